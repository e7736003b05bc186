"""One rollout per endpoint at a time: a lease in the stack's coordination table.

The deploy workflow holds the lease from its first look at the endpoint to its last step, so two deployments
of one dataset never change the endpoint together: the second waits, then compares itself with the model the
first left serving. Item: ``{pk: "rollout#<endpoint>", holder: <deploy execution ARN>, packageArn,
acquiredAt, expiresAt}`` (``expiresAt`` is also the table's TTL attribute).

A lease is free when nobody holds it, when it expired, or when its holder execution has ended: a stopped or
timed-out execution never reaches its release step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code

KEY_PREFIX = "rollout#"
_CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Lease:
    acquired: bool
    endpoint: str
    holder: str
    package_arn: str
    expires_at: int


def lease_key(endpoint: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"{KEY_PREFIX}{endpoint}"}}


def _holder_ended(sfn: Any, holder: str) -> bool:
    """True when the holder execution is no longer running (or never existed); unknown counts as running."""
    try:
        return str(sfn.describe_execution(executionArn=holder)["status"]) != "RUNNING"
    except ClientError as error:
        return error_code(error) == "ExecutionDoesNotExist"


def acquire(
    dynamodb: Any,
    sfn: Any,
    *,
    table: str,
    endpoint: str,
    execution_arn: str,
    package_arn: str,
    seconds: int,
    now: int,
) -> Lease:
    """Take the endpoint's lease for this execution (again, if it already holds it), or say who holds it."""
    item = {
        **lease_key(endpoint),
        "holder": {"S": execution_arn},
        "packageArn": {"S": package_arn},
        "acquiredAt": {"N": str(now)},
        "expiresAt": {"N": str(now + seconds)},
    }
    mine = Lease(True, endpoint, execution_arn, package_arn, now + seconds)
    try:
        dynamodb.put_item(
            TableName=table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk) OR holder = :me OR expiresAt < :now",
            ExpressionAttributeValues={":me": {"S": execution_arn}, ":now": {"N": str(now)}},
        )
        return mine
    except ClientError as error:
        if error_code(error) != _CONDITION_FAILED:
            raise
    current = dynamodb.get_item(TableName=table, Key=lease_key(endpoint), ConsistentRead=True).get("Item")
    if current is None:  # released in between: try again on the next turn
        return Lease(False, endpoint, "(released)", "", now)
    holder = current["holder"]["S"]
    if _holder_ended(sfn, holder):
        try:
            dynamodb.put_item(
                TableName=table,
                Item=item,
                ConditionExpression="holder = :old",
                ExpressionAttributeValues={":old": {"S": holder}},
            )
            return mine
        except ClientError as error:
            if error_code(error) != _CONDITION_FAILED:
                raise
    return Lease(
        False,
        endpoint,
        holder,
        current.get("packageArn", {}).get("S", ""),
        int(current.get("expiresAt", {}).get("N", now)),
    )


def release(dynamodb: Any, *, table: str, endpoint: str, execution_arn: str) -> bool:
    """Give the lease back if this execution holds it; False when it does not (nothing to release)."""
    try:
        dynamodb.delete_item(
            TableName=table,
            Key=lease_key(endpoint),
            ConditionExpression="holder = :me",
            ExpressionAttributeValues={":me": {"S": execution_arn}},
        )
        return True
    except ClientError as error:
        if error_code(error) != _CONDITION_FAILED:
            raise
        return False
