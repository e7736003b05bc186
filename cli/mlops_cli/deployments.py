"""Actions that change what serves: rollback (through the deploy workflow), restore (the cost guard's
function), redrive (the trigger's dead-letter queue)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops_cli import resources, runs
from mlops_cli.context import Aws
from mlops_cli.errors import CliError

EXECUTION_NAME_MAX = 80  # Step Functions


@dataclass
class RollbackPlan:
    dataset: str
    endpoint: str
    serving: str | None
    package: resources.Package
    stage: str | None = None  # None: the endpoint the package was registered for

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "stage": self.stage,
            "endpointName": self.endpoint,
            "fromModelPackageArn": self.serving,
            "toModelPackageArn": self.package.arn,
            "toVersion": self.package.version,
        }


def stage_endpoint(registered: str, stage: str | None) -> str:
    """The endpoint of a stage, from the one packages are registered for (staging with Stages=staging-prod,
    the only one otherwise; pipeline/naming.py)."""
    from mlops_common.pipeline import naming

    if stage is None:
        return registered
    if not registered.endswith(naming.STAGING_SUFFIX):
        raise CliError(f"{registered} has no stages (Stages=single): leave out --stage")
    return registered if stage == naming.STAGING else registered.removesuffix(naming.STAGING_SUFFIX)


def plan_rollback(aws: Aws, dataset: str, version: int | None, stage: str | None = None) -> RollbackPlan:
    group = resources.dataset_group(aws, dataset)
    every = resources.packages(aws, group)
    approved = [p for p in every if p.status == resources.APPROVED]
    endpoint = stage_endpoint(
        next((p.properties["endpoint-name"] for p in every if p.properties.get("endpoint-name")), group),
        stage,
    )
    try:
        serving = resources.get_endpoint(aws, endpoint).package_arn
    except CliError:
        serving = None  # deleted (cost guard): the deployment creates it again
    if version is not None:
        chosen = next((p for p in every if p.version == version), None)
        if chosen is None:
            known = ", ".join(str(p.version) for p in every) or "none"
            raise CliError(f"dataset {dataset} has no package version {version} (versions: {known})")
        if chosen.status != resources.APPROVED:
            raise CliError(
                f"{chosen.arn} is {chosen.status}: only an Approved package is deployed (approve it first: "
                f"mlops approve {chosen.arn})"
            )
    else:
        serving_version = next((p.version for p in every if p.arn == serving), None)
        older = [p for p in approved if serving_version is None or (p.version or 0) < serving_version]
        chosen = older[0] if older and serving_version is not None else None
        if chosen is None:
            versions = ", ".join(str(p.version) for p in approved) or "none"
            raise CliError(
                f"no approved package of {dataset} older than the serving one (approved versions: "
                f"{versions}); name one with --to VERSION"
            )
    if chosen.arn == serving:
        raise CliError(f"{endpoint} already serves version {chosen.version}")
    return RollbackPlan(resources.dataset_of(chosen, dataset), endpoint, serving, chosen, stage)


def execution_name(plan: RollbackPlan, now: datetime) -> str:
    """'rollback-<endpoint>-v<version>-<UTC time>': unique per request. max: 9+48+1+6+1+15 = 80"""
    stamp = now.strftime("%Y%m%dT%H%M%S")
    head = f"rollback-{plan.endpoint[:48]}-v{plan.package.version}"
    return f"{head}-{stamp}"[:EXECUTION_NAME_MAX]


def start(aws: Aws, plan: RollbackPlan) -> dict[str, str]:
    """Start the stack's deploy state machine on the chosen package, as an approval would."""
    machine = aws.output("DeployStateMachineArn", "the deploy state machine")
    name = execution_name(plan, datetime.now(UTC))
    response = aws.client("stepfunctions").start_execution(
        stateMachineArn=machine,
        name=name,
        input=json.dumps(
            {"modelPackageArn": plan.package.arn, "source": "rollback"}
            | ({"endpointName": plan.endpoint, "stage": plan.stage} if plan.stage else {})
        ),
    )
    return {"name": name, "executionArn": response["executionArn"]}


def wait(
    aws: Aws,
    execution_arn: str,
    emit: Callable[[str, str, runs.Step], None],
    interval: float,
    timeout: float = 3 * 3600,
) -> runs.Run:
    progress = runs.Progress()
    deadline = time.monotonic() + timeout
    while True:
        run = runs.describe(aws, execution_arn)
        for item in progress.lines("deploy", run):
            emit(*item)
        if run.status in runs.TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise CliError(f"deployment {run.name} still {run.status} after {timeout:.0f}s")
        time.sleep(interval)


# ---------------------------------------------------------------- restore


def restore(aws: Aws, endpoint: str) -> dict[str, Any]:
    """Invoke the cost guard's restore function; its refusal (no restore record, ...) is the error line."""
    function = aws.output("RestoreEndpointFunctionName", "the cost guard's restore function")
    response = aws.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"endpoint_name": endpoint}).encode()
    )
    body = response["Payload"].read()
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError:
        payload = body.decode("utf-8", errors="replace")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise CliError(f"restore of {endpoint} refused: {message}")
    if not isinstance(payload, dict):
        raise CliError(f"restore of {endpoint}: unexpected answer from {function}: {payload!r}")
    return payload


# ---------------------------------------------------------------- redrive

DEAD_LETTER_OUTPUT = "TriggerDeadLetterQueueUrl"
REDRIVE_OUTPUT = "RedriveFunctionName"


def redrive(aws: Aws, dry_run: bool, max_messages: int) -> dict[str, Any]:
    """Replay the trigger's dead-letter queue through the stack's redrive function (it hands each event to
    StartRun or ApprovalListener again and deletes what they accepted); --dry-run only counts."""
    queue = aws.outputs.get(DEAD_LETTER_OUTPUT)
    function = aws.outputs.get(REDRIVE_OUTPUT)
    if not queue or not function:
        raise CliError(
            f"stack {aws.target.stack} has no trigger dead-letter queue ({DEAD_LETTER_OUTPUT} and "
            f"{REDRIVE_OUTPUT} outputs): update the stack to a version that has one"
        )
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    result: dict[str, Any] = {
        "queueUrl": queue,
        "waiting": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "inFlight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "dryRun": dry_run,
        "function": function,
        "replayed": 0,
        "failed": [],
        "unknown": [],
        "results": [],
    }
    if dry_run or result["waiting"] == 0:
        return result
    response = aws.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"max_messages": max_messages}).encode()
    )
    answer = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = answer.get("errorMessage") if isinstance(answer, dict) else answer
        raise CliError(f"the redrive function {function} failed: {message}")
    if isinstance(answer, dict):
        result.update({k: answer[k] for k in ("replayed", "failed", "unknown", "results") if k in answer})
    return result
