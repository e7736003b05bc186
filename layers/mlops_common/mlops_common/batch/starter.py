"""Start one batch execution per triggering object version; duplicates and ignored objects are outcomes."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.batch import trigger
from mlops_common.pipeline import starter
from mlops_common.pipeline.trigger import ObjectEvent

STARTED, DUPLICATE, IGNORED = "started", "duplicate", "ignored"


def start_for_event(
    event: ObjectEvent, *, sfn: Any, s3: Any, state_machine_arn: str, input_bucket: str
) -> dict[str, Any]:
    """{outcome: started|duplicate|ignored, reason, executionName?, batchId?, key}."""
    if event.bucket != input_bucket:
        return {
            "outcome": IGNORED,
            "reason": f"bucket {event.bucket} is not the input bucket",
            "key": event.key,
        }
    key = starter.resolve_key(s3, event)
    if key is None:
        return {"outcome": IGNORED, "reason": "the object no longer exists", "key": event.key}
    event = ObjectEvent(
        event.bucket, key, event.size, event.etag, event.version_id, event.sequencer, event.event_time
    )
    decision = trigger.classify(key, event.size)
    if not decision.start or decision.dataset is None:
        return {"outcome": IGNORED, "reason": decision.reason, "key": key}
    name = trigger.execution_name(event, decision.dataset)
    batch = trigger.batch_id(event, decision)
    if starter.execution_status(sfn, state_machine_arn, name) is not None:
        return {"outcome": DUPLICATE, "reason": "already started", "executionName": name, "key": key}
    payload = {
        "batchId": batch,
        "dataset": decision.dataset,
        "trigger": decision.trigger,
        "inputPrefix": decision.input_prefix,
        "bucket": event.bucket,
        "key": key,
        "versionId": event.version_id,
        "eventTime": event.event_time,
    }
    try:
        arn = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload, sort_keys=True)
        )["executionArn"]
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":  # lost a race with a redelivered event
            return {"outcome": DUPLICATE, "reason": "already started", "executionName": name, "key": key}
        raise
    return {
        "outcome": STARTED,
        "reason": decision.reason,
        "executionName": name,
        "executionArn": arn,
        "batchId": batch,
        "dataset": decision.dataset,
        "key": key,
    }
