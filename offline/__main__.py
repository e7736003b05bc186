"""The offline CLI (docs/offline.md): demo, up, down, outputs, fire-schedule RULE, invoke ENDPOINT FILE."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from offline import DEFAULT_STACK_NAME
from offline.stack import DEFAULT_BUILD_DIR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m offline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="deploy into an in-process AWS, run the sample dataset, predict")
    demo.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    demo.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR, help="sam build output")

    for name, text in (
        ("up", "start the embedded AWS server in the background and deploy the stack"),
        ("serve", "the server process itself (up starts it)"),
        ("outputs", "print the running stack's outputs"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--port", type=int, default=None, help="default: $LOCAL_AWS_PORT or 4566")
        sub.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
        sub.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR, help="sam build output")
    commands.add_parser("down", help="stop the server started by up")

    fire = commands.add_parser(
        "fire-schedule", help="run a schedule rule's target once on the running server"
    )
    fire.add_argument("rule", help="the EventBridge rule name (aws events list-rules)")
    fire.add_argument("--apply", action="store_true", help="really stop/delete (default: DRY_RUN=true)")
    fire.add_argument("--port", type=int, default=None)

    invoke = commands.add_parser(
        "invoke", help="invoke an endpoint on the running server with a file's content"
    )
    invoke.add_argument("endpoint")
    invoke.add_argument("file", type=Path, help=".csv (text/csv) or .json (application/json)")
    invoke.add_argument("--port", type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one return per command
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from offline.demo import run_demo

        return run_demo(args.stack_name, args.build_dir)

    from offline import server

    port = getattr(args, "port", None) or server.default_port()
    if args.command == "up":
        return server.up(port, args.stack_name, args.build_dir)
    if args.command == "serve":
        return server.serve(port, args.stack_name, args.build_dir)
    if args.command == "down":
        return server.down()
    if server.running_pid() is None:
        print("The embedded AWS is not running: start it with `make local-up`.")
        return 1
    try:
        if args.command == "outputs":
            return server.print_outputs(port)
        if args.command == "fire-schedule":
            return _fire_schedule(port, args.rule, dry_run=not args.apply)
        if args.command == "invoke":
            return _invoke(port, args.endpoint, args.file)
    except (BotoCoreError, ClientError) as error:
        print(f"{args.command} failed: {error}")
        return 1
    return 2


def _fire_schedule(port: int, rule: str, dry_run: bool) -> int:
    from offline import server
    from offline.demo import DemoFailed, describe_sweep, fire_schedule

    events = server.remote_client("events", port)
    try:
        targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    except events.exceptions.ResourceNotFoundException:
        names = [r["Name"] for r in events.list_rules()["Rules"]]
        print(f"No rule {rule!r}; rules: {', '.join(names) or 'none'}")
        return 1
    for target in targets:
        function = target["Arn"].rsplit(":function:", 1)[-1].split(":", 1)[0]
        print(f"rule {rule} -> {function}{' (dry run)' if dry_run else ''}")
        try:
            result = fire_schedule(
                lambda name: server.remote_client(name, port), function, target.get("Input"), dry_run
            )
        except DemoFailed as error:
            print(f"  {error}")
            return 1
        for line in describe_sweep(result):
            print(line)
    return 0


def _invoke(port: int, endpoint: str, path: Path) -> int:
    from offline import server

    if not path.is_file():
        print(f'{path} does not exist: give a .csv (feature rows) or .json ({{"instances": [...]}}) file')
        return 1
    content_type = "application/json" if path.suffix == ".json" else "text/csv"
    runtime = server.remote_client("sagemaker-runtime", port)
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType=content_type, Accept="application/json", Body=path.read_bytes()
    )
    body = response["Body"].read()
    try:
        print(json.dumps(json.loads(body), indent=2))
    except json.JSONDecodeError:
        print(body.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
