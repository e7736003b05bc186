"""Quiet-period batching: a dataset's uploads become one run once its folders have been quiet for a while.

One item per dataset in the stack's coordination table (key ``pk = "dataset#<name>"``; other records in that
table use other prefixes):

    lastUploadAt  epoch ms of the latest upload (S3's event time)   uploads  how many uploads were seen
    waiter        execution name of the batch waiter of the current quiet period (absent: none running)
    waiterCheckedAt  epoch ms of the waiter's latest check (a heartbeat)      expiresAt  TTL (epoch s)

- Every upload: one UpdateItem sets lastUploadAt, counts the upload and claims the waiter slot if it is
  free (``if_not_exists``). The upload that claimed it starts the waiter execution; the others do nothing
  more.
- The waiter (statemachines/batch_waiter.asl.json) waits, then checks: quiet long enough? Then it starts the
  run and closes the quiet period with a conditional write that fails if an upload came in meanwhile (then it
  waits again, and the next run covers the late upload). A failed start is retried by the state machine;
  the run's content-derived name makes a retried start idempotent.
- A waiter that stopped checking (its start failed after the slot was claimed, or it failed for good) is taken
  over by the next upload once its heartbeat is older than the quiet time plus STALE_AFTER_SECONDS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code

ITEM_PREFIX = "dataset#"
STALE_AFTER_SECONDS = 300
TTL_SECONDS = 30 * 24 * 3600
WAITING = "waiting"
QUIET = "quiet"
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class UploadRecord:
    waiter: str  # this quiet period's waiter
    claimed: bool  # this upload opened the quiet period (or took over a stale waiter): start the waiter
    checked_at_ms: int


@dataclass(frozen=True)
class QuietCheck:
    outcome: str  # waiting | quiet | superseded
    wait_seconds: int = 0
    uploads: int = 0


def item_key(dataset: str) -> dict[str, Any]:
    return {"pk": {"S": f"{ITEM_PREFIX}{dataset}"}}


def record_upload(
    ddb: Any, table: str, dataset: str, *, uploaded_ms: int, candidate: str, now_ms: int
) -> UploadRecord:
    """Count one upload of the dataset (made at uploaded_ms: S3's time, so a backlog of events never splits
    a batch) and claim the waiter slot when it is free."""
    claim = (
        "waiter = if_not_exists(waiter, :candidate), waiterCheckedAt = if_not_exists(waiterCheckedAt, :now), "
        "expiresAt = :expires"
    )
    values = {
        ":candidate": {"S": candidate},
        ":now": {"N": str(now_ms)},
        ":expires": {"N": str(now_ms // 1000 + TTL_SECONDS)},
        ":one": {"N": "1"},
    }
    try:
        before = ddb.update_item(
            TableName=table,
            Key=item_key(dataset),
            UpdateExpression=f"SET lastUploadAt = :uploaded, {claim} ADD uploads :one",
            # Events arrive in any order: the latest upload time wins.
            ConditionExpression="attribute_not_exists(lastUploadAt) OR lastUploadAt <= :uploaded",
            ExpressionAttributeValues={**values, ":uploaded": {"N": str(uploaded_ms)}},
            # The item as it was: a waiter there before this upload means the quiet period is already open.
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        # An older upload's event, late: it still counts and may open a quiet period; the time stays.
        before = ddb.update_item(
            TableName=table,
            Key=item_key(dataset),
            UpdateExpression=f"SET {claim} ADD uploads :one",
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
    if "waiter" not in before:
        return UploadRecord(candidate, True, now_ms)
    return UploadRecord(before["waiter"]["S"], False, int(before["waiterCheckedAt"]["N"]))


def is_stale(record: UploadRecord, now_ms: int, quiet_seconds: int) -> bool:
    return now_ms - record.checked_at_ms > (quiet_seconds + STALE_AFTER_SECONDS) * 1000


def take_over(ddb: Any, table: str, dataset: str, *, stale_waiter: str, candidate: str, now_ms: int) -> bool:
    """Replace a waiter that stopped checking; False when another upload or the waiter got there first."""
    try:
        ddb.update_item(
            TableName=table,
            Key=item_key(dataset),
            UpdateExpression="SET waiter = :candidate, waiterCheckedAt = :now",
            ConditionExpression="waiter = :stale",
            ExpressionAttributeValues={
                ":candidate": {"S": candidate},
                ":now": {"N": str(now_ms)},
                ":stale": {"S": stale_waiter},
            },
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def release(ddb: Any, table: str, dataset: str, waiter: str) -> None:
    """Free the slot of a waiter that could not be started, so the retried upload claims it again."""
    try:
        ddb.update_item(
            TableName=table,
            Key=item_key(dataset),
            UpdateExpression="REMOVE waiter, waiterCheckedAt",
            ConditionExpression="waiter = :me",
            ExpressionAttributeValues={":me": {"S": waiter}},
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise


def check_quiet(
    ddb: Any, table: str, dataset: str, *, waiter: str, quiet_seconds: int, now_ms: int
) -> QuietCheck:
    """Has the dataset been quiet for quiet_seconds? If not, how long to wait (and a heartbeat)."""
    item = ddb.get_item(TableName=table, Key=item_key(dataset), ConsistentRead=True).get("Item")
    if not item or item.get("waiter", {}).get("S") != waiter:
        return QuietCheck(SUPERSEDED)
    remaining_ms = quiet_seconds * 1000 - (now_ms - int(item["lastUploadAt"]["N"]))
    uploads = int(item.get("uploads", {"N": "0"})["N"])
    if remaining_ms > 0:
        try:
            ddb.update_item(
                TableName=table,
                Key=item_key(dataset),
                UpdateExpression="SET waiterCheckedAt = :now",
                ConditionExpression="waiter = :me",
                ExpressionAttributeValues={":now": {"N": str(now_ms)}, ":me": {"S": waiter}},
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return QuietCheck(SUPERSEDED)
            raise
        return QuietCheck(WAITING, max(1, math.ceil(remaining_ms / 1000)), uploads)
    return QuietCheck(QUIET, 0, uploads)


def close_quiet_period(ddb: Any, table: str, dataset: str, *, waiter: str, uploads_seen: int) -> bool:
    """End the waiter's quiet period, unless an upload arrived since the check (then False: wait again)."""
    try:
        ddb.update_item(
            TableName=table,
            Key=item_key(dataset),
            UpdateExpression="REMOVE waiter, waiterCheckedAt",
            ConditionExpression="waiter = :me AND uploads = :seen",
            ExpressionAttributeValues={":me": {"S": waiter}, ":seen": {"N": str(uploads_seen)}},
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True
