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

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "endpointName": self.endpoint,
            "fromModelPackageArn": self.serving,
            "toModelPackageArn": self.package.arn,
            "toVersion": self.package.version,
        }


def plan_rollback(aws: Aws, dataset: str, version: int | None) -> RollbackPlan:
    group = resources.dataset_group(aws, dataset)
    every = resources.packages(aws, group)
    approved = [p for p in every if p.status == resources.APPROVED]
    endpoint = next(
        (p.properties["endpoint-name"] for p in every if p.properties.get("endpoint-name")), group
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
    return RollbackPlan(resources.dataset_of(chosen, dataset), endpoint, serving, chosen)


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
        input=json.dumps({"modelPackageArn": plan.package.arn, "source": "rollback"}),
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


def dead_letter_queue(aws: Aws) -> str:
    """The trigger's dead-letter queue URL (the stack output whose name ends in DeadLetterQueue...)."""
    for key, value in sorted(aws.outputs.items()):
        if "DeadLetterQueue" in key and value.startswith(("https://", "http://")):
            return value
    for key, value in sorted(aws.outputs.items()):
        if "DeadLetterQueue" in key and value.startswith("arn:aws:sqs:"):
            account, name = value.split(":")[4:6]
            return aws.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    raise CliError(
        f"stack {aws.target.stack} has no dead-letter queue output (…DeadLetterQueue): update the stack to a "
        "version whose trigger has one"
    )


def redrive(aws: Aws, dry_run: bool) -> dict[str, Any]:
    """Hand every dead-lettered trigger event to the run starter again; delete each one it accepted."""
    queue = dead_letter_queue(aws)
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    waiting = int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))
    result: dict[str, Any] = {
        "queueUrl": queue,
        "waiting": waiting,
        "redriven": 0,
        "failed": 0,
        "dryRun": dry_run,
    }
    if dry_run or waiting == 0:
        return result
    function = _starter_function(aws)
    results: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            break
        for message in messages:
            response = aws.client("lambda").invoke(FunctionName=function, Payload=message["Body"].encode())
            answer = json.loads(response["Payload"].read() or b"null")
            if response.get("FunctionError"):
                result["failed"] += 1
                results.append({"messageId": message["MessageId"], "error": answer})
                continue  # left in the queue; it comes back after its visibility timeout
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            result["redriven"] += 1
            results.append({"messageId": message["MessageId"], "result": answer})
    result["results"] = results
    return result


def _starter_function(aws: Aws) -> str:
    for logical_id, name in aws.physical_ids("AWS::Lambda::Function").items():
        if logical_id.startswith("StartRun"):
            return name
    raise CliError(f"stack {aws.target.stack} has no StartRun function to hand the events to")
