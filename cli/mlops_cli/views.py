"""Each command: gather the facts, then print them as tables or as the JSON documented in docs/cli.md."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_cli import resources, runs
from mlops_cli.context import Aws
from mlops_cli.errors import CliError, RunFailedError
from mlops_cli.output import STATUS_STYLES, Printer, iso, seconds_text

# Parameters that change what the stack does, shown by `status`.
SHOWN_PARAMETERS = (
    "Environment",
    "ApprovalMode",
    "DeployMode",
    "RolloutStrategy",
    "Stages",
    "PromotionMode",
    "CostGuardDryRun",
    "CostGuardScope",
    "CreateNotebook",
)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return f"{seconds_text((now - moment).total_seconds())} ago"


def _run_rows(items: list[runs.Run], now: datetime) -> list[list[Any]]:
    return [
        [r.name, r.dataset, r.step_reached, r.outcome, seconds_text(r.seconds), _ago(r.started, now)]
        for r in items
    ]


_RUN_COLUMNS = ("run", "dataset", "step reached", "outcome", "duration", "started")
_RUN_STYLES = {"failed": "red", "timed_out": "red", "aborted": "red", "running": "yellow"}


# ---------------------------------------------------------------- status


def status(aws: Aws, out: Printer, run_count: int) -> None:
    from mlops_cli import costs

    now = datetime.now(UTC)
    stack = aws.stack
    recent = runs.list_runs(aws, limit=run_count)
    endpoints = resources.stack_endpoints(aws)
    pending = resources.pending_packages(aws)
    books = resources.notebooks(aws)
    guard = costs.cost_guard(aws, now - timedelta(days=7), now)
    parameters = {k: aws.parameters[k] for k in SHOWN_PARAMETERS if k in aws.parameters}
    if out.json:
        out.data(
            {
                "stack": {
                    "name": aws.target.stack,
                    "status": stack.get("StackStatus"),
                    "region": aws.region,
                    "stackId": stack.get("StackId"),
                    "lastUpdatedAt": iso(stack.get("LastUpdatedTime") or stack.get("CreationTime")),
                    "parameters": parameters,
                },
                "runs": [r.summary_json() for r in recent],
                "endpoints": [e.to_json() for e in endpoints],
                "pendingApprovals": [p.to_json() for p in pending],
                "notebooks": [n.to_json(now) for n in books],
                "costGuard": guard.to_json(),
            }
        )
        return
    out.pairs(
        [
            ("stack", f"{aws.target.stack} ({stack.get('StackStatus')}, {aws.region})"),
            ("parameters", ", ".join(f"{k}={v or '-'}" for k, v in parameters.items())),
        ]
    )
    out.line()
    out.table(
        _RUN_COLUMNS, _run_rows(recent, now), title="Recent runs", empty="no runs yet", styles=_RUN_STYLES
    )
    out.line()
    staged = any(e.stage for e in endpoints)  # a stage column only when Stages=staging-prod made stages
    out.table(
        ("endpoint", *(("stage",) if staged else ()), "status", "package", "since"),
        [
            [
                e.name,
                *([e.stage or "-"] if staged else []),
                e.status,
                _package_label(e.package_arn),
                _ago(e.modified, now),
            ]
            for e in endpoints
        ],
        title="Endpoints",
        empty="no endpoints",
        styles=STATUS_STYLES,
    )
    out.line()
    out.table(
        ("dataset", "version", "metrics", "registered", "model package"),
        [[p.dataset, p.version, _metrics_text(p.metrics), _ago(p.created, now), p.arn] for p in pending],
        title="Pending approval (mlops approve <dataset>)",
        empty="nothing waiting",
    )
    out.line()
    out.table(
        ("notebook", "status", "type", "idle"),
        [[n.name, n.status, n.instance_type, _idle_text(n.idle_minutes(now))] for n in books],
        title="Notebooks",
        empty="no notebook instances",
        styles=STATUS_STYLES,
    )
    out.line()
    costs.print_cost_guard(out, guard, now)


def _package_label(arn: str | None) -> str:
    if not arn:
        return "-"
    group, _, version = arn.rpartition("/")
    return f"{group.rsplit('/', 1)[-1]} v{version}"


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())) or "-"


def _idle_text(minutes: float | None) -> str:
    if minutes is None:
        return "-"
    return seconds_text(minutes * 60)


# ---------------------------------------------------------------- runs


def runs_list(aws: Aws, out: Printer, dataset: str | None, status_filter: str | None, limit: int) -> None:
    found = runs.list_runs(aws, limit=limit, dataset=dataset, status=status_filter)
    if out.json:
        out.data([r.summary_json() for r in found])
        return
    out.table(_RUN_COLUMNS, _run_rows(found, datetime.now(UTC)), empty="no runs", styles=_RUN_STYLES)


def _stage_pairs(stages: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Stages=staging-prod: 'staging  <endpoint>: serving v3', 'prod  <endpoint>: awaiting promotion'."""
    if not stages:
        return []
    pairs = []
    for stage in ("staging", "prod"):
        facts = stages.get(stage) or {}
        package = facts.get("modelPackageArn")
        served = f" {_package_label(package)}" if package else ""
        pairs.append((stage, f"{facts.get('endpointName')}: {facts.get('status')}{served}"))
    return pairs


def print_run(out: Printer, run: runs.Run) -> None:
    details = run.to_json()
    out.pairs(
        [
            ("run", run.name),
            ("dataset", run.dataset),
            ("source", details["source"]),
            ("status", f"{run.status} ({run.outcome})"),
            ("started", iso(run.started)),
            ("duration", seconds_text(run.seconds)),
            ("model package", details["modelPackageArn"]),
            ("endpoint", details["endpointName"]),
            ("metrics", _metrics_text(details["metrics"]) if isinstance(details["metrics"], dict) else None),
            *_stage_pairs(run.stages),
        ]
    )
    out.line()
    out.table(
        ("step", "status", "duration", "job / function"),
        [
            [
                s.name + (f" (x{s.visits})" if s.visits > 1 else ""),
                s.status,
                seconds_text(s.seconds) if s.ended else "-",
                s.job.name if s.job else s.function,
            ]
            for s in run.steps
        ],
        title="Steps",
        empty="no steps yet",
        styles={"failed": "red", "running": "yellow"},
    )
    if run.failure:
        out.line()
        out.line(f"Failed at {run.failure.step}: {run.failure.error}", style="bold red")
        out.line(f"  {run.failure.cause}")
        out.line(f"  logs: mlops logs {run.name}", style="dim")


def run_show(aws: Aws, out: Printer, ref: str) -> None:
    run = runs.find_run(aws, ref)
    if out.json:
        out.data(run.to_json())
        return
    print_run(out, run)


def run_follow(
    aws: Aws, out: Printer, ref: str | None, *, interval: float, timeout: float, wait_start: float
) -> None:
    started = datetime.now(UTC)
    run = runs.find_run(aws, ref) if ref else _wait_for_run(aws, started - timedelta(minutes=2), wait_start)
    out.line(f"Following {run.name} (dataset {run.dataset}), {run.status.lower()}:")

    def emit(label: str, status: str, step: runs.Step) -> None:
        mark = "ok  " if status == "succeeded" else "FAIL"
        visits = f"  (ran {step.visits} times)" if step.visits > 1 else ""
        error = f"  {step.error}" if status == "failed" and step.error else ""
        out.line(
            f"  {mark} {label:<7} {step.name:<34} {seconds_text(step.seconds):>8}{visits}{error}",
            style="red" if status == "failed" else None,
        )

    final = runs.follow(aws, run, emit, interval=interval, timeout=timeout)
    if out.json:
        out.data(final.to_json())
    else:
        out.line(f"{final.name} {final.status} ({final.outcome}) in {seconds_text(final.seconds)}")
        if final.failure:
            out.line(
                f"  cause: {final.failure.step}: {final.failure.error}: {final.failure.cause}", style="red"
            )
            out.line(f"  logs:  mlops logs {final.name}")
    if final.status != "SUCCEEDED":
        if out.json:
            # Scripts read the JSON; people read the lines above. Both get exit code 1.
            pass
        raise RunFailedError(final.name)


def _wait_for_run(aws: Aws, since: datetime, wait_start: float) -> runs.Run:
    deadline = time.monotonic() + wait_start
    while True:
        run = runs.newest_run(aws, since)
        if run is not None:
            return run
        if time.monotonic() >= deadline:
            raise CliError(
                f"no run is running in stack {aws.target.stack} and none started in {wait_start:.0f}s: "
                "name one from `mlops runs list`"
            )
        time.sleep(1.0)


# ---------------------------------------------------------------- logs


def logs(aws: Aws, out: Printer, ref: str, step_name: str | None, max_lines: int) -> None:
    from mlops_cli import logs as run_logs

    run = runs.find_run(aws, ref)
    report = run_logs.collect(aws, run, step_name, max_lines)
    if out.json:
        out.data(report.to_json())
        return
    run_logs.print_report(out, run, report)


# ---------------------------------------------------------------- approvals, rollback


def set_approval(aws: Aws, out: Printer, ref: str, status: str, note: str | None) -> None:
    package = resources.resolve_package(aws, ref)
    if package.status != resources.PENDING:
        raise CliError(
            f"{package.arn} is {package.status}, not {resources.PENDING}: only a pending package is "
            f"{status.lower()} here (to deploy an earlier approved one: mlops rollback {package.dataset})"
        )
    updated = resources.set_approval(aws, package, status, note)
    if out.json:
        out.data(updated.to_json())
        return
    verb = "approved" if status == resources.APPROVED else "rejected"
    out.line(f"{verb}: {updated.arn} (dataset {updated.dataset}, version {updated.version})")
    if status == resources.APPROVED:
        endpoint = updated.properties.get("endpoint-name")
        out.line(f"the approval starts its deployment to {endpoint}; watch it with `mlops status`")


def _follow_deployment(
    aws: Aws,
    out: Printer,
    result: dict[str, Any],
    *,
    execution_arn: str,
    endpoint_name: str,
    action: str,
    wait: bool,
    interval: float,
) -> None:
    """Print a deployment the command started, step by step, until it ends (or its start only, without
    --wait); a deployment that did not succeed exits non-zero."""
    from mlops_cli import deployments

    if not wait:
        if out.json:
            out.data(result)
        return

    def emit(label: str, status: str, step: runs.Step) -> None:
        mark = "ok  " if status == "succeeded" else "FAIL"
        out.line(
            f"  {mark} {step.name:<34} {seconds_text(step.seconds):>8}",
            style="red" if status == "failed" else None,
        )

    final = deployments.wait(aws, execution_arn, emit, interval)
    endpoint = resources.get_endpoint(aws, endpoint_name)
    result.update(
        {
            "status": final.status,
            "failure": final.failure.to_json() if final.failure else None,
            "endpoint": endpoint.to_json(),
        }
    )
    if out.json:
        out.data(result)
    elif final.status == "SUCCEEDED":
        out.line(f"{endpoint_name} now serves {_package_label(endpoint.package_arn)} ({endpoint.status})")
    else:
        failure = final.failure
        out.line(
            f"{action} {final.status}: {failure.step}: {failure.cause}" if failure else final.status,
            style="red",
        )
    if final.status != "SUCCEEDED":
        raise RunFailedError(final.name)


def rollback(
    aws: Aws,
    out: Printer,
    dataset: str,
    version: int | None,
    *,
    stage: str | None = None,
    wait: bool,
    interval: float,
) -> None:
    from mlops_cli import deployments

    plan = deployments.plan_rollback(aws, dataset, version, stage)
    execution = deployments.start(aws, plan)
    if not out.json:
        out.line(
            f"rolling {plan.endpoint} back from {_package_label(plan.serving)} to "
            f"{_package_label(plan.package.arn)} through the deploy workflow ({execution['name']})"
        )
    result: dict[str, Any] = {
        **plan.to_json(),
        "executionArn": execution["executionArn"],
        "status": "RUNNING",
    }
    _follow_deployment(
        aws,
        out,
        result,
        execution_arn=execution["executionArn"],
        endpoint_name=plan.endpoint,
        action="rollback",
        wait=wait,
        interval=interval,
    )


def promote(aws: Aws, out: Printer, dataset: str, *, wait: bool, interval: float) -> None:
    """Stages=staging-prod: deploy the package the staging endpoint serves to prod (docs/stages.md)."""
    from botocore.exceptions import ClientError

    from mlops_common.pipeline import stages

    try:
        started = stages.start_promotion(
            aws.client("sagemaker"),
            aws.client("stepfunctions"),
            deploy_state_machine_arn=aws.output("DeployStateMachineArn", "the deploy state machine"),
            stack_name=aws.target.stack,
            dataset=dataset,
        )
    except stages.PromotionRefusedError as error:
        raise CliError(f"not promoted: {error}") from error
    except ClientError as error:
        raise CliError(f"promotion of {dataset} could not start: {error}") from error
    if not out.json:
        out.line(
            f"promoting {_package_label(started['modelPackageArn'])} from {started['stagingEndpoint']} to "
            f"{started['prodEndpoint']} (serving {_package_label(started['fromModelPackageArn'])}) through "
            f"the deploy workflow ({started['executionName']})"
        )
    result: dict[str, Any] = {**started, "status": "RUNNING"}
    _follow_deployment(
        aws,
        out,
        result,
        execution_arn=started["executionArn"],
        endpoint_name=started["prodEndpoint"],
        action="promotion",
        wait=wait,
        interval=interval,
    )


# ---------------------------------------------------------------- endpoints


def restore(aws: Aws, out: Printer, endpoint: str) -> None:
    from mlops_cli import deployments

    result = deployments.restore(aws, endpoint)
    if out.json:
        out.data(result)
        return
    out.pairs(sorted((str(k), v) for k, v in result.items()), title=f"Restore of {endpoint}")


def invoke(aws: Aws, out: Printer, endpoint: str, body: bytes, content_type: str) -> None:
    answer = resources.invoke(aws, endpoint, body, content_type)
    if out.json or not isinstance(answer, dict | list):
        if out.json:
            out.data(answer)
        else:
            out.line(str(answer))
        return
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if isinstance(predictions, list) and predictions and all(isinstance(p, dict) for p in predictions):
        keys = list(dict.fromkeys(k for p in predictions for k in p))
        rows = [[i + 1, *(_cell(p.get(k)) for k in keys)] for i, p in enumerate(predictions)]
        out.table(("row", *keys), rows)
        return
    import json

    out.line(json.dumps(answer, indent=2))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


# ---------------------------------------------------------------- notebooks


def notebooks_list(aws: Aws, out: Printer) -> None:
    now = datetime.now(UTC)
    books = resources.notebooks(aws)
    if out.json:
        out.data([n.to_json(now) for n in books])
        return
    out.table(
        ("notebook", "status", "type", "idle", "last activity"),
        [
            [n.name, n.status, n.instance_type, _idle_text(n.idle_minutes(now)), iso(n.last_activity)]
            for n in books
        ],
        empty="no notebook instances",
        styles=STATUS_STYLES,
    )


def notebook_url(aws: Aws, out: Printer, name: str | None) -> None:
    from botocore.exceptions import ClientError

    notebook = resources.notebook(aws, name)
    described = resources.describe_notebook(aws, notebook)
    if described["NotebookInstanceStatus"] != "InService":
        raise CliError(
            f"{notebook} is {described['NotebookInstanceStatus']}: start it first "
            f"(mlops notebooks start {notebook})"
        )
    try:
        url = aws.client("sagemaker").create_presigned_notebook_instance_url(
            NotebookInstanceName=notebook, SessionExpirationDurationInSeconds=1800
        )["AuthorizedUrl"]
        signed = True
    except (ClientError, NotImplementedError) as error:
        if "implemented" not in str(error).lower():
            raise
        url, signed = f"https://{described.get('Url')}/lab", False  # the emulator cannot sign a URL
    if out.json:
        out.data({"notebookInstanceName": notebook, "url": url, "signed": signed})
        return
    out.line(url)


def notebook_change(aws: Aws, out: Printer, name: str | None, action: str) -> None:
    notebook = resources.notebook(aws, name)
    described = resources.describe_notebook(aws, notebook)
    current = described["NotebookInstanceStatus"]
    # StartNotebookInstance needs Stopped (or Failed); StopNotebookInstance needs InService.
    allowed = {"start": ("Stopped", "Failed"), "stop": ("InService",)}[action]
    if current not in allowed:
        done = {"start": "started", "stop": "stopped"}[action]
        raise CliError(f"{notebook} is {current}: it can be {done} only when {' or '.join(allowed)}")
    sagemaker = aws.client("sagemaker")
    if action == "start":
        sagemaker.start_notebook_instance(NotebookInstanceName=notebook)
    else:
        sagemaker.stop_notebook_instance(NotebookInstanceName=notebook)
    after = resources.describe_notebook(aws, notebook)["NotebookInstanceStatus"]
    if out.json:
        out.data({"notebookInstanceName": notebook, "action": action, "before": current, "status": after})
        return
    out.line(f"{notebook}: {current} -> {after}")


# ---------------------------------------------------------------- images, savings, redrive


def images(out: Printer, framework: str | None, region: str | None) -> None:
    from mlops_cli import catalog

    rows = catalog.image_rows(framework, region)
    if out.json:
        out.data(rows)
        return
    out.table(
        ("framework", "region", "version", "image"),
        [
            [
                r["framework"],
                r["region"],
                r["version"] + (" (default)" if r["default"] else ""),
                r["imageUri"],
            ]
            for r in rows
        ],
    )


def savings(aws: Aws, out: Printer, since: timedelta) -> None:
    from mlops_cli import costs

    now = datetime.now(UTC)
    report = costs.cost_guard(aws, now - since, now)
    if out.json:
        out.data(report.to_json())
        return
    costs.print_savings(out, report, now)


def redrive(aws: Aws, out: Printer, dry_run: bool, max_messages: int) -> None:
    from mlops_cli import deployments

    result = deployments.redrive(aws, dry_run, max_messages)
    if out.json:
        out.data(result)
        return
    out.pairs(
        [
            ("queue", result["queueUrl"]),
            ("waiting", result["waiting"]),
            ("in flight", result["inFlight"]),
            ("replayed", None if dry_run else result["replayed"]),
        ],
        title="Trigger dead-letter queue" + (" (dry run)" if dry_run else ""),
    )
    rows = [
        [item.get("messageId"), "failed", item.get("function"), item.get("error")]
        for item in result["failed"]
    ]
    rows += [[item.get("messageId"), "unknown", "-", item.get("reason")] for item in result["unknown"]]
    if rows:
        out.line()
        out.table(("message", "outcome", "function", "why"), rows, title="Left in the queue")
