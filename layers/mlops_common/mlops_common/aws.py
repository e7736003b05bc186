"""AWS clients and the one way every function notifies people (SNS topic + EventBridge event)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Adaptive retries absorb throttling from SageMaker's low per-account API limits.
_RETRYING = Config(retries={"max_attempts": 8, "mode": "adaptive"})

# SNS subjects: at most 100 printable ASCII characters.
_MAX_SUBJECT = 100


# What S3 answers for a missing key: 404/NotFound to HEAD, NoSuchKey to GET (AccessDenied instead when the
# caller may not list the bucket).
S3_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def error_code(error: Exception) -> str | None:
    """The AWS error code of a botocore ClientError ("ThrottlingException", "NoSuchKey"...), else None."""
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


class NotificationError(RuntimeError):
    """A notification was not delivered; the message says where and why."""


@cache
def client(service: str) -> Any:
    """One boto3 client per service per execution environment, created on first use (not at cold start)."""
    return boto3.client(service, config=_RETRYING)  # type: ignore[call-overload]


def publish_notification(
    topic_arn: str,
    subject: str,
    message: dict[str, Any],
    *,
    event_source: str | None = None,
    event_detail_type: str | None = None,
    sns: Any = None,
    events: Any = None,
) -> None:
    """Send one notification to people (SNS) and, when a detail type is given, to machines (EventBridge)."""
    sns = sns or client("sns")
    safe_subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:_MAX_SUBJECT]
    sns.publish(
        TopicArn=topic_arn,
        Subject=safe_subject,
        Message=json.dumps(message, indent=2, default=str, sort_keys=True),
    )
    if event_source and event_detail_type:
        events = events or client("events")
        response = events.put_events(
            Entries=[
                {
                    "Source": event_source,
                    "DetailType": event_detail_type,
                    "Detail": json.dumps(message, default=str),
                }
            ]
        )
        # PutEvents reports a refused entry in its response, not as an error.
        if response.get("FailedEntryCount"):
            entries: list[dict[str, Any]] = response.get("Entries", [])
            failed = next((e for e in entries if e.get("ErrorCode")), {})
            raise NotificationError(
                f"EventBridge did not accept the {event_detail_type!r} event: "
                f"{failed.get('ErrorCode', 'unknown')}: {failed.get('ErrorMessage', 'no message')}"
            )
