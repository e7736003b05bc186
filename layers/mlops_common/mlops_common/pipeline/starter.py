"""Start one pipeline execution per dataset version; duplicates and ignored objects are outcomes."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import S3_MISSING_CODES, error_code
from mlops_common.pipeline import trigger

STARTED = "started"
DUPLICATE = "duplicate"
IGNORED = "ignored"


def resolve_key(s3: Any, event: trigger.ObjectEvent) -> str | None:
    """The object's real key: as delivered, or URL-decoded when only that exists (None: it is gone)."""
    candidates = trigger.key_candidates(event.key)
    if len(candidates) == 1:
        return candidates[0]
    for key in candidates:
        try:
            s3.head_object(Bucket=event.bucket, Key=key)
            return key
        except ClientError as error:
            if error_code(error) not in {*S3_MISSING_CODES, "403"}:
                raise
    return None


def execution_arn(state_machine_arn: str, name: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def execution_status(sfn: Any, state_machine_arn: str, name: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, ... of the named execution, or None when there is none."""
    try:
        described = sfn.describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as error:
        if error_code(error) == "ExecutionDoesNotExist":
            return None
        raise
    return str(described["status"])


def execution_exists(sfn: Any, state_machine_arn: str, name: str) -> bool:
    """StartExecution returns a running execution of the same name and input (no error): look first."""
    return execution_status(sfn, state_machine_arn, name) is not None


def execution_input(event: trigger.ObjectEvent, decision: trigger.Decision, run_id: str) -> dict[str, Any]:
    return {
        "runId": run_id,
        "bucket": event.bucket,
        "key": event.key,
        "versionId": event.version_id,
        "sequencer": event.sequencer,
        "etag": event.etag,
        "size": event.size,
        "dataset": decision.dataset,
        "trigger": decision.trigger,
        "eventTime": event.event_time,
    }


def start_for_event(
    event: trigger.ObjectEvent, *, sfn: Any, s3: Any, state_machine_arn: str, input_bucket: str
) -> dict[str, Any]:
    """{outcome: started|duplicate|ignored, reason, executionName?, executionArn?, key}."""
    if event.bucket != input_bucket:
        return {
            "outcome": IGNORED,
            "reason": f"bucket {event.bucket} is not the input bucket",
            "key": event.key,
        }
    key = resolve_key(s3, event)
    if key is None:
        return {"outcome": IGNORED, "reason": "the object no longer exists", "key": event.key}
    event = trigger.ObjectEvent(
        event.bucket, key, event.size, event.etag, event.version_id, event.sequencer, event.event_time
    )
    decision = trigger.classify(key, event.size)
    if not decision.start or decision.dataset is None:
        return {"outcome": IGNORED, "reason": decision.reason, "key": key}
    name = trigger.execution_name_for(event, decision.dataset)
    if execution_exists(sfn, state_machine_arn, name):
        # At-least-once delivery: this dataset version already has its run.
        return {"outcome": DUPLICATE, "reason": "already started", "executionName": name, "key": key}
    payload = json.dumps(execution_input(event, decision, name), sort_keys=True)
    try:
        arn = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=payload)["executionArn"]
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":  # lost a race
            return {"outcome": DUPLICATE, "reason": "already started", "executionName": name, "key": key}
        raise
    return {
        "outcome": STARTED,
        "reason": decision.reason,
        "executionName": name,
        "executionArn": arn,
        "dataset": decision.dataset,
        "key": key,
    }
