"""Endpoints: find idle ones (zero invocations on every variant for a window), record, delete, restore.

An endpoint cannot be stopped, only deleted; its endpoint config and model stay, and a JSON record in S3 keeps
what CreateEndpoint needs again (name, config, tags), so `restore_endpoint` brings it back in one call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from mlops_common.aws import S3_MISSING_CODES, error_code
from mlops_common.cost_guard.metrics import MetricQuery, get_metric_values
from mlops_common.cost_guard.pricing import fleet_hourly_price
from mlops_common.cost_guard.settings import (
    ALLOW_DELETE_IN_PROD_TAG,
    RESTORE_RECORD_PREFIX,
    EndpointSettings,
    tag_is_true,
)
from mlops_common.cost_guard.summary import SweepSummary, add_aws_error, error_text
from mlops_common.cost_guard.tags import resource_tags, tag_exclusion

# Endpoint names: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpoint.html
ENDPOINT_NAME: Final = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass(frozen=True)
class Variant:
    name: str
    instance_type: str | None  # None: serverless; "" until the endpoint config was read
    instance_count: int


@dataclass
class EndpointCandidate:
    name: str
    arn: str
    config_name: str
    tags: dict[str, str]
    variants: list[Variant] = field(default_factory=list)

    @property
    def serverless(self) -> bool:
        return all(variant.instance_type is None for variant in self.variants)


def invocation_query(endpoint: str, variant: str, period_seconds: int) -> MetricQuery:
    return MetricQuery(
        key=f"{endpoint}\t{variant}",
        namespace="AWS/SageMaker",
        metric_name="Invocations",
        dimensions=(("EndpointName", endpoint), ("VariantName", variant)),
        stat="Sum",
        period_seconds=period_seconds,
    )


def invocation_totals(
    cloudwatch: Any, candidates: list[EndpointCandidate], start: datetime, end: datetime
) -> dict[str, float]:
    """Invocations per endpoint summed over every production variant, from batched GetMetricData calls."""
    # One period spanning the window keeps each series to one or two datapoints (periods: multiples of 60).
    period = max(60, int((end - start).total_seconds()) // 60 * 60)
    queries = [invocation_query(c.name, v.name, period) for c in candidates for v in c.variants]
    values = get_metric_values(cloudwatch, queries, start, end)
    totals = {candidate.name: 0.0 for candidate in candidates}
    for key, points in values.items():
        endpoint = key.split("\t", 1)[0]
        totals[endpoint] += sum(value for _, value in points)
    return totals


def _describe(sagemaker: Any, name: str, arn: str, tags: dict[str, str]) -> EndpointCandidate:
    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    variants = [
        Variant(
            name=v["VariantName"],
            instance_type=None if "CurrentServerlessConfig" in v else "",  # known after _add_instance_types
            instance_count=int(v.get("CurrentInstanceCount", 0)),
        )
        for v in endpoint.get("ProductionVariants", [])
    ]
    return EndpointCandidate(name, arn, endpoint["EndpointConfigName"], tags, variants)


def _add_instance_types(sagemaker: Any, candidate: EndpointCandidate) -> str | None:
    """Read the endpoint config (only for idle endpoints): instance types for the price, and proof that the
    config still exists, without which a deleted endpoint could not be restored. Returns why the endpoint
    must not be swept at all, or None."""
    config = sagemaker.describe_endpoint_config(EndpointConfigName=candidate.config_name)
    variants = config.get("ProductionVariants", [])
    types = {v["VariantName"]: v.get("InstanceType") for v in variants}
    candidate.variants = [
        Variant(v.name, None if v.instance_type is None else types.get(v.name), v.instance_count)
        for v in candidate.variants
    ]
    if config.get("AsyncInferenceConfig"):
        return "asynchronous inference endpoint: queue-based, not swept (give it scale-to-zero autoscaling)"
    if any("ModelName" not in v for v in variants):
        # Endpoints hosting inference components report traffic per component, not per variant.
        return "inference-component endpoint: not swept (scale its components to zero instead)"
    return None


def restore_record_key(endpoint_name: str) -> str:
    return f"{RESTORE_RECORD_PREFIX}{endpoint_name}.json"


def _hourly(settings: EndpointSettings, candidate: EndpointCandidate) -> float | None:
    fleet = [(v.instance_type, v.instance_count) for v in candidate.variants if v.instance_type]
    return fleet_hourly_price(settings.common.region, fleet)


def _listed_candidates(
    sagemaker: Any, settings: EndpointSettings, summary: SweepSummary
) -> list[dict[str, Any]]:
    """InService endpoints past their grace period; the others in their grace period are recorded as kept."""
    listed: list[dict[str, Any]] = []
    try:
        # Filtered by SageMaker: fewer pages (and throttles) than listing every endpoint in the account.
        for page in sagemaker.get_paginator("list_endpoints").paginate(StatusEquals="InService"):
            for endpoint in page.get("Endpoints", []):
                summary.examined += 1
                name = endpoint["EndpointName"]
                created = endpoint["CreationTime"]
                changed = max(created, endpoint.get("LastModifiedTime") or created)
                if summary.started_at - changed < settings.grace:
                    summary.add(name, "kept", "created or updated within the grace period")
                    continue
                listed.append(endpoint)
    except (ClientError, BotoCoreError) as error:
        # Sweep what was listed; the next run sees the rest.
        summary.add("(list endpoints)", "error", f"listing stopped early: {error_text(error)}")
    return listed


def _inspected(
    sagemaker: Any, listed: list[dict[str, Any]], scope: str, summary: SweepSummary
) -> list[EndpointCandidate]:
    """Endpoints with instances that tags do not exclude, described (config, variants, instance types)."""
    candidates: list[EndpointCandidate] = []
    for endpoint in listed:
        name = endpoint["EndpointName"]
        try:
            tags = resource_tags(sagemaker, endpoint["EndpointArn"])
            excluded = tag_exclusion(tags, scope)
            if excluded:
                summary.add(name, "skipped", excluded)
                continue
            candidate = _describe(sagemaker, name, endpoint["EndpointArn"], tags)
        except (ClientError, BotoCoreError) as error:
            add_aws_error(summary, name, "describe", error)
            continue
        if not candidate.variants:
            summary.add(name, "skipped", "no production variants")
        elif candidate.serverless:
            summary.add(name, "skipped", "serverless: billed per request, no idle cost")
        else:
            candidates.append(candidate)
    return candidates


def sweep_endpoints(
    sagemaker: Any, cloudwatch: Any, s3: Any, settings: EndpointSettings, now: datetime
) -> SweepSummary:
    """Examine every endpoint in the account and region; delete (or report) the idle ones."""
    common = settings.common
    summary = SweepSummary(kind="endpoints", dry_run=common.dry_run, started_at=now)
    candidates = _inspected(
        sagemaker, _listed_candidates(sagemaker, settings, summary), common.scope, summary
    )
    if not candidates:
        return summary
    try:
        totals = invocation_totals(cloudwatch, candidates, now - settings.idle_window, now)
    except (ClientError, BotoCoreError) as error:
        # No evidence of idleness is no reason to delete anything.
        for candidate in candidates:
            summary.add(candidate.name, "error", f"invocations unreadable, kept: {error_text(error)}")
        return summary
    hours = f"{settings.idle_window.total_seconds() / 3600:g} h"
    for candidate in candidates:
        invocations = totals.get(candidate.name, 0.0)
        if invocations > 0:
            summary.add(candidate.name, "kept", f"{invocations:.0f} invocations in the last {hours}")
            continue
        reason = f"no invocations on any of {len(candidate.variants)} variant(s) in {hours}"
        try:
            unsweepable = _add_instance_types(sagemaker, candidate)
        except (ClientError, BotoCoreError) as error:
            summary.add(
                candidate.name, "error", f"endpoint config unreadable, so not deleted: {error_text(error)}"
            )
            continue
        if unsweepable:
            summary.add(candidate.name, "skipped", unsweepable)
            continue
        price = _hourly(settings, candidate)
        if common.is_prod and not tag_is_true(candidate.tags, ALLOW_DELETE_IN_PROD_TAG):
            prod_reason = f"{reason}; prod: tag {ALLOW_DELETE_IN_PROD_TAG}=true to allow deleting"
            summary.add(candidate.name, "reported", prod_reason, price)
        elif common.dry_run:
            summary.add(candidate.name, "would_delete", reason, price)
        else:
            _record_and_delete(
                sagemaker, s3, summary, candidate, bucket=settings.restore_bucket, reason=reason, price=price
            )
    return summary


def _record_and_delete(
    sagemaker: Any,
    s3: Any,
    summary: SweepSummary,
    candidate: EndpointCandidate,
    *,
    bucket: str,
    reason: str,
    price: float | None,
) -> None:
    record = {
        "endpoint_name": candidate.name,
        "endpoint_arn": candidate.arn,
        "endpoint_config_name": candidate.config_name,
        # aws:* tags belong to AWS (CloudFormation etc.) and cannot be set by CreateEndpoint.
        "tags": [
            {"Key": key, "Value": value}
            for key, value in sorted(candidate.tags.items())
            if not key.startswith("aws:")
        ],
        "variants": [
            {"name": v.name, "instance_type": v.instance_type, "instance_count": v.instance_count}
            for v in candidate.variants
        ],
        "estimated_hourly_usd": price,
        "reason": reason,
        "deleted_at": summary.started_at.isoformat(),
    }
    try:
        # Written first: an endpoint is never deleted without the record that brings it back.
        s3.put_object(
            Bucket=bucket,
            Key=restore_record_key(candidate.name),
            Body=json.dumps(record, indent=2).encode(),
            ContentType="application/json",
        )
    except (ClientError, BotoCoreError) as error:
        summary.add(
            candidate.name, "error", f"no restore record written, so not deleted: {error_text(error)}"
        )
        return
    try:
        sagemaker.delete_endpoint(EndpointName=candidate.name)
    except (ClientError, BotoCoreError) as error:
        # e.g. "Cannot update in-progress endpoint" or already gone: a skip; anything else: an error.
        add_aws_error(summary, candidate.name, "delete", error)
        return
    summary.add(candidate.name, "deleted", reason, price)


class RestoreError(Exception):
    """The endpoint cannot be restored; the message says why and what to do."""


@dataclass(frozen=True)
class RestoreResult:
    endpoint_name: str
    endpoint_config_name: str
    status: str  # "restoring" | "already_exists"
    message: str


def parse_restore_record(body: bytes, uri: str, endpoint_name: str) -> dict[str, Any]:
    """The record's content, or RestoreError naming the record and what is wrong with it."""

    def bad(problem: str) -> RestoreError:
        return RestoreError(
            f"restore record {uri} {problem}; it is written by the endpoint sweeper when it deletes an "
            "endpoint: fix the record or recreate the endpoint by hand (aws sagemaker create-endpoint)"
        )

    try:
        record = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise bad(f"is not JSON ({error})") from None
    if not isinstance(record, dict):
        raise bad(f"is a JSON {type(record).__name__}, not an object")
    if record.get("endpoint_name") != endpoint_name:
        raise bad(f"names endpoint {record.get('endpoint_name')!r}, not {endpoint_name!r}")
    config_name = record.get("endpoint_config_name")
    if not isinstance(config_name, str) or not ENDPOINT_NAME.match(config_name):
        raise bad(f"has no valid endpoint_config_name (found {config_name!r})")
    tags = record.get("tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(tag, dict) and isinstance(tag.get("Key"), str) and isinstance(tag.get("Value"), str)
        for tag in tags
    ):
        raise bad('has tags that are not a list of {"Key": "...", "Value": "..."} strings')
    return record


def restore_endpoint(
    sagemaker: Any, s3: Any, bucket: str, endpoint_name: str, now: datetime
) -> RestoreResult:
    """Recreate an endpoint the cost guard deleted, from its restore record. Idempotent."""
    if not isinstance(endpoint_name, str) or not ENDPOINT_NAME.match(endpoint_name):
        raise RestoreError(
            f"endpoint_name {endpoint_name!r} is not a SageMaker endpoint name; "
            'invoke with {"endpoint_name": "<name of an endpoint the cost guard deleted>"}'
        )
    key = restore_record_key(endpoint_name)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        # Without s3:ListBucket, S3 answers a missing object with AccessDenied instead of NoSuchKey.
        if error_code(error) in {*S3_MISSING_CODES, "AccessDenied"}:
            raise RestoreError(
                f"no cost-guard record for endpoint {endpoint_name!r} at s3://{bucket}/{key} "
                f"({error_text(error)}): only endpoints the cost guard deleted can be restored; list them "
                f"with aws s3 ls s3://{bucket}/{RESTORE_RECORD_PREFIX}"
            ) from error
        raise
    record = parse_restore_record(body, f"s3://{bucket}/{key}", endpoint_name)
    config_name = record["endpoint_config_name"]
    try:
        existing = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if error_code(error) != "ValidationException":
            raise
    else:
        if existing.get("EndpointStatus") == "Deleting":
            # DeleteEndpoint is asynchronous: right after a sweep the name is still taken for a few minutes.
            raise RestoreError(
                f"endpoint {endpoint_name} is still being deleted (status Deleting); "
                "invoke the restore again in a few minutes"
            )
        return RestoreResult(
            endpoint_name,
            existing.get("EndpointConfigName", config_name),
            "already_exists",
            f"endpoint {endpoint_name} exists ({existing.get('EndpointStatus')}); nothing to do",
        )
    try:
        sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError as error:
        raise RestoreError(
            f"endpoint config {config_name!r} of {endpoint_name!r} no longer exists, so the endpoint cannot "
            "be recreated as it was; redeploy the model (rerun the pipeline or create the config) instead"
        ) from error
    create: dict[str, Any] = {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
    if record.get("tags"):
        create["Tags"] = record["tags"]
    sagemaker.create_endpoint(**create)
    record["restored_at"] = now.isoformat()
    body = json.dumps(record, indent=2).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    return RestoreResult(
        endpoint_name,
        config_name,
        "restoring",
        f"CreateEndpoint sent for {endpoint_name} (config {config_name}); InService in a few minutes",
    )
