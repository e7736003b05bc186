"""Replay the trigger dead-letter queue: each message is an event StartRun or ApprovalListener could not
handle (EventBridge's undeliverable events and Lambda's failed asynchronous invocations both carry the event
itself as the body). Each is handed to its function again, synchronously; a message is deleted only when that
succeeded, else it stays in the queue (visible again once the redrive is done) and the result says why.

Used by the RedriveFunction (one `aws lambda invoke`) and callable from any tool with boto3 clients.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

# Which function handles an event, by the event's source (EventBridge events) or shape (S3 notifications).
S3_SOURCE = "aws.s3"
SAGEMAKER_SOURCE = "aws.sagemaker"
_RECEIVE_BATCH = 10
# Longer than a redrive takes: a message is handled at most once per redrive (and not by two at once).
_VISIBILITY_SECONDS = 300


@dataclass
class RedriveResult:
    replayed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replayed": len(self.replayed),
            "failed": self.failed,
            "unknown": self.unknown,
            "results": self.replayed,
        }


def target_of(event: Any, targets: dict[str, str]) -> str | None:
    if not isinstance(event, dict):
        return None
    if "Records" in event:
        return targets.get(S3_SOURCE)
    return targets.get(str(event.get("source")))


def _attributes(message: dict[str, Any]) -> dict[str, str]:
    return {
        name: value.get("StringValue", "") for name, value in (message.get("MessageAttributes") or {}).items()
    }


def redrive(
    sqs: Any, lambda_client: Any, queue_url: str, targets: dict[str, str], max_messages: int = 1000
) -> RedriveResult:
    """Hand every message (up to max_messages) to its function again; see the module doc."""
    result = RedriveResult()
    kept: list[str] = []  # receipt handles of messages that stay; visible again once this redrive is done
    seen = 0
    while seen < max_messages:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(_RECEIVE_BATCH, max_messages - seen),
            MessageAttributeNames=["All"],
            VisibilityTimeout=_VISIBILITY_SECONDS,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            break
        seen += len(messages)
        for message in messages:
            if not _replay(lambda_client, targets, message, result, sqs=sqs, queue_url=queue_url):
                kept.append(message["ReceiptHandle"])
    for receipt in kept:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return result


def _replay(
    lambda_client: Any,
    targets: dict[str, str],
    message: dict[str, Any],
    result: RedriveResult,
    *,
    sqs: Any,
    queue_url: str,
) -> bool:
    """True when the event was handled (and its message deleted)."""
    why = {"messageId": message["MessageId"], "deadLetterReason": _attributes(message)}
    try:
        event = json.loads(message["Body"])
    except json.JSONDecodeError:
        event = None
    function = target_of(event, targets)
    if function is None:
        # Left in the queue for a person: not an event of this stack's triggers.
        result.unknown.append({**why, "reason": "not an S3 or SageMaker event this stack handles"})
        return False
    try:
        response = lambda_client.invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read().decode("utf-8", errors="replace")
        error = payload if response.get("FunctionError") else None
    except ClientError as invoke_error:  # throttled, function gone: this message stays, the others go on
        payload, error = "", f"{type(invoke_error).__name__}: {invoke_error}"
    if error is not None:
        result.failed.append({**why, "function": function, "error": error[:2000]})
        return False
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    try:
        answer: Any = json.loads(payload)
    except json.JSONDecodeError:
        answer = payload
    result.replayed.append({**why, "function": function, "result": answer})
    return True
