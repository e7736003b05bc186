"""The `mlops` command: see, follow, approve, roll back, restore and debug the stack (docs/cli.md).

Only click is imported here: boto3, rich and the layer are imported inside the commands, so `--help` is fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from mlops_cli.errors import USAGE_EXIT_CODE, CliError, RunFailedError

OUTPUT_MODES = ("table", "json")


class State:
    """What the group's options decided, handed to every command."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self._aws: Any = None
        self._printer: Any = None

    @property
    def aws(self) -> Any:
        if self._aws is None:
            from mlops_cli.context import Aws, Target

            self._aws = Aws(
                Target.resolve(
                    stack=self.options["stack"],
                    config_env=self.options["config_env"],
                    profile=self.options["profile"],
                    region=self.options["region"],
                    endpoint_url=self.options["endpoint_url"],
                    local=self.options["local"],
                )
            )
        return self._aws

    @property
    def out(self) -> Any:
        if self._printer is None:
            from mlops_cli.output import Printer

            self._printer = Printer(self.options["output"])
        return self._printer


pass_state = click.make_pass_decorator(State)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--stack", help="Stack name. Default: $MLOPS_STACK, else stack_name in samconfig.toml.")
@click.option("--config-env", default="default", show_default=True, help="samconfig.toml environment.")
@click.option("--profile", envvar="AWS_PROFILE", help="AWS profile, as for the aws CLI.")
@click.option("--region", help="AWS region. Default: $AWS_REGION, the profile's, or samconfig.toml's.")
@click.option(
    "--local", is_flag=True, help="The offline stack of `make local-up` (127.0.0.1:$LOCAL_AWS_PORT)."
)
@click.option("--endpoint-url", help="Send every AWS call to this URL (an emulator).")
@click.option(
    "--output", "-o", type=click.Choice(OUTPUT_MODES), default="table", show_default=True,
    help="table for people, json for scripts (shapes in docs/cli.md).",
)  # fmt: skip
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """Operate the SageMaker MLOps stack: runs, logs, approvals, rollbacks, endpoints, notebooks, costs."""
    ctx.obj = State(options)


# ---------------------------------------------------------------- status


@cli.command()
@click.option("--runs", "run_count", default=5, show_default=True, help="How many recent runs to show.")
@pass_state
def status(state: State, run_count: int) -> None:
    """One screen: stack, recent runs, endpoints, pending approvals, notebooks, cost guard."""
    from mlops_cli import views

    views.status(state.aws, state.out, run_count)


# ---------------------------------------------------------------- runs


@cli.group()
def runs() -> None:
    """Pipeline runs: list, show one, follow one live."""


@runs.command("list")
@click.option("--dataset", help="Only this dataset's runs.")
@click.option(
    "--status", "status_filter",
    type=click.Choice(["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"], case_sensitive=False),
    help="Only runs in this state.",
)  # fmt: skip
@click.option("--limit", default=20, show_default=True, help="At most this many runs, newest first.")
@pass_state
def runs_list(state: State, dataset: str | None, status_filter: str | None, limit: int) -> None:
    """Recent runs: dataset, step reached, outcome, duration."""
    from mlops_cli import views

    views.runs_list(state.aws, state.out, dataset, status_filter.upper() if status_filter else None, limit)


@runs.command("show")
@click.argument("run")
@pass_state
def runs_show(state: State, run: str) -> None:
    """One run's steps, durations, jobs and failure. RUN: run name, its prefix, or a dataset (newest run)."""
    from mlops_cli import views

    views.run_show(state.aws, state.out, run)


@runs.command("follow")
@click.argument("run", required=False)
@click.option("--interval", default=2.0, show_default=True, help="Seconds between checks.")
@click.option("--timeout", default=6 * 3600.0, show_default=True, help="Give up after this many seconds.")
@click.option(
    "--wait", "wait_start", default=60.0, show_default=True, help="Seconds to wait for a run to start."
)
@pass_state
def runs_follow(state: State, run: str | None, interval: float, timeout: float, wait_start: float) -> None:
    """Live progress per step until the run ends; exit code 1 when it failed. RUN: default the newest."""
    from mlops_cli import views

    views.run_follow(state.aws, state.out, run, interval=interval, timeout=timeout, wait_start=wait_start)


# ---------------------------------------------------------------- logs


@cli.command()
@click.argument("run")
@click.option("--step", help="The step whose job logs to show (default: the failed step, else every job).")
@click.option("--lines", "max_lines", default=200, show_default=True, help="At most this many lines per log.")
@pass_state
def logs(state: State, run: str, step: str | None, max_lines: int) -> None:
    """A run's job logs (CloudWatch Logs) and its Lambda log lines (by correlation id)."""
    from mlops_cli import views

    views.logs(state.aws, state.out, run, step, max_lines)


# ---------------------------------------------------------------- approvals and deployments


@cli.command()
@click.argument("package")
@click.option("--note", help="Approval description kept on the package.")
@pass_state
def approve(state: State, package: str, note: str | None) -> None:
    """Approve a package pending approval (ARN, or a dataset: its newest pending one); it then deploys."""
    from mlops_cli import views

    views.set_approval(state.aws, state.out, package, "Approved", note)


@cli.command()
@click.argument("package")
@click.option("--reason", required=True, help="Why: kept on the package as its approval description.")
@pass_state
def reject(state: State, package: str, reason: str) -> None:
    """Reject a package pending approval (ARN, or a dataset: its newest pending one)."""
    from mlops_cli import views

    views.set_approval(state.aws, state.out, package, "Rejected", reason)


@cli.command()
@click.argument("dataset")
@click.option(
    "--to", "version", type=int, help="Package version to deploy (default: the one before the serving one)."
)
@click.option(
    "--stage",
    type=click.Choice(["staging", "prod"]),
    help="With Stages=staging-prod: the stage's endpoint (default: staging, where runs deploy).",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the deployment to its end.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between checks while waiting.")
@pass_state
def rollback(
    state: State, *, dataset: str, version: int | None, stage: str | None, wait: bool, interval: float
) -> None:
    """Deploy an earlier approved package of a dataset through the deploy workflow."""
    from mlops_cli import views

    views.rollback(state.aws, state.out, dataset, version, stage=stage, wait=wait, interval=interval)


@cli.command()
@click.argument("dataset")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the deployment to its end.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between checks while waiting.")
@pass_state
def promote(state: State, dataset: str, wait: bool, interval: float) -> None:
    """Deploy the model a dataset's staging endpoint serves to its prod endpoint (Stages=staging-prod)."""
    from mlops_cli import views

    views.promote(state.aws, state.out, dataset, wait=wait, interval=interval)


# ---------------------------------------------------------------- endpoints


@cli.command()
@click.argument("endpoint")
@pass_state
def restore(state: State, endpoint: str) -> None:
    """Recreate an endpoint the cost guard deleted (its restore function)."""
    from mlops_cli import views

    views.restore(state.aws, state.out, endpoint)


@cli.command()
@click.argument("endpoint")
@click.option("--file", "path", type=click.Path(path_type=Path), help=".csv rows, or a .json body.")
@click.option("--json", "body", help="A JSON body, e.g. '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}'.")
@click.option("--content-type", help="Default: text/csv for .csv files, else application/json.")
@pass_state
def invoke(
    state: State, endpoint: str, path: Path | None, body: str | None, content_type: str | None
) -> None:
    """Send rows to an endpoint and print its answers."""
    from mlops_cli import views

    if (path is None) == (body is None):
        raise CliError("give the request as --file rows.csv or --json '...' (one of them)")
    if path is not None:
        if not path.is_file():
            raise CliError(f"{path} does not exist: give a .csv file of feature rows or a .json body")
        payload = path.read_bytes()
        kind = content_type or ("text/csv" if path.suffix.lower() in (".csv", ".txt") else "application/json")
    else:
        assert body is not None
        try:
            json.loads(body)
        except json.JSONDecodeError as error:
            raise CliError(f"--json is not valid JSON ({error.msg} at character {error.pos})") from error
        payload, kind = body.encode(), content_type or "application/json"
    views.invoke(state.aws, state.out, endpoint, payload, kind)


# ---------------------------------------------------------------- notebooks


@cli.group()
def notebooks() -> None:
    """Notebook instances: list (with idle time), url, start, stop."""


@notebooks.command("list")
@pass_state
def notebooks_list(state: State) -> None:
    """Notebook instances with their status and idle time (heartbeat)."""
    from mlops_cli import views

    views.notebooks_list(state.aws, state.out)


@notebooks.command("url")
@click.argument("name", required=False)
@pass_state
def notebooks_url(state: State, name: str | None) -> None:
    """A signed URL that opens JupyterLab (default: the stack's notebook)."""
    from mlops_cli import views

    views.notebook_url(state.aws, state.out, name)


@notebooks.command("start")
@click.argument("name", required=False)
@pass_state
def notebooks_start(state: State, name: str | None) -> None:
    """Start a stopped notebook instance (default: the stack's notebook)."""
    from mlops_cli import views

    views.notebook_change(state.aws, state.out, name, "start")


@notebooks.command("stop")
@click.argument("name", required=False)
@pass_state
def notebooks_stop(state: State, name: str | None) -> None:
    """Stop a running notebook instance (default: the stack's notebook)."""
    from mlops_cli import views

    views.notebook_change(state.aws, state.out, name, "stop")


# ---------------------------------------------------------------- images, savings, redrive


@cli.command()
@click.option(
    "--framework", help="sklearn (the default recipe's container; the only one the pipeline picks by itself)."
)
@click.option("--region", "image_region", help="One region (default: every region the pipeline supports).")
@pass_state
def images(state: State, framework: str | None, image_region: str | None) -> None:
    """The container image URIs the pipeline uses, per region (no AWS call)."""
    from mlops_cli import views

    views.images(state.out, framework, image_region)


@cli.command()
@click.option("--since", default="7d", show_default=True, help="How far back: 90m, 36h, 7d, 2w.")
@pass_state
def savings(state: State, since: str) -> None:
    """What the cost guard stopped or deleted, and the estimated saving."""
    from mlops_cli import views

    views.savings(state.aws, state.out, parse_since(since))


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only count what is in the dead-letter queue.")
@click.option("--max", "max_messages", default=1000, show_default=True, help="At most this many messages.")
@pass_state
def redrive(state: State, dry_run: bool, max_messages: int) -> None:
    """Replay the trigger's dead-letter queue (uploads and approvals whose event was not handled)."""
    from mlops_cli import views

    views.redrive(state.aws, state.out, dry_run, max_messages)


# ---------------------------------------------------------------- entry point


def parse_since(text: str) -> timedelta:
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise CliError(f"--since {text!r}: give a number and a unit, e.g. 90m, 36h, 7d or 2w")
    return timedelta(**{units[unit]: int(number)})


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _aws_error_line(error: Exception) -> str | None:  # noqa: PLR0911 - one line per kind of error
    """One line for the errors of the AWS SDK a user can act on; None for other exceptions."""
    from botocore import exceptions as boto

    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return (
            "no AWS credentials: pass --profile (aws configure list-profiles), set AWS_PROFILE or the "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables; for the offline stack use --local"
        )
    if isinstance(error, boto.NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(error, boto.ProfileNotFound):
        return f"{error}: pass an existing --profile (aws configure list-profiles)"
    if isinstance(error, boto.EndpointConnectionError):
        return (
            f"cannot reach {error.kwargs.get('endpoint_url')}: check --endpoint-url/--region, or the network"
        )
    if isinstance(error, boto.ClientError):
        detail = error.response.get("Error", {})
        code = detail.get("Code", "Error")
        if code in (
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidClientTokenId",
            "UnrecognizedClientException",
        ):
            return f"AWS rejected the credentials ({code}): refresh them (aws sso login, or a new session)"
        if code in ("AccessDenied", "AccessDeniedException"):
            return f"access denied ({error.operation_name}): {_one_line(detail.get('Message', ''))}"
        return f"{error.operation_name} failed: {code}: {_one_line(detail.get('Message', ''))}"
    if isinstance(error, boto.BotoCoreError):
        return _one_line(str(error))
    return None


def run(  # noqa: PLR0911 - one exit per kind of ending
    argv: list[str] | None = None, standalone: Callable[[int], None] = sys.exit
) -> None:
    """Run the command; user errors end as one line on stderr with exit code 2, never a traceback."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="mlops", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mlops: aborted", err=True)
        standalone(130)
        return
    except click.ClickException as error:
        error.show()
        standalone(error.exit_code)
        return
    except click.exceptions.Exit as error:
        standalone(error.exit_code)
        return
    except CliError as error:
        click.echo(f"mlops: error: {_one_line(str(error))}", err=True)
        standalone(USAGE_EXIT_CODE)
        return
    except RunFailedError:
        standalone(1)
        return
    except KeyboardInterrupt:
        click.echo("mlops: interrupted", err=True)
        standalone(130)
        return
    except Exception as error:
        if debug:
            raise
        line = _aws_error_line(error) if "botocore" in sys.modules else None
        if line is None:
            line = (
                f"unexpected {type(error).__name__}: {_one_line(str(error))} (rerun with --debug for details)"
            )
        click.echo(f"mlops: error: {line}", err=True)
        standalone(USAGE_EXIT_CODE)
        return
    standalone(0)


def main() -> None:
    """Console script entry point."""
    run()
