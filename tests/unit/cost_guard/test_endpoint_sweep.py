"""Endpoint sweep and restore against moto, with real CloudWatch Invocations data."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from botocore.stub import Stubber
from cost_guard_fakes import BUCKET, NOW, Aws, backend, fail_for, with_common

from mlops_common.cost_guard.endpoints import (
    RestoreError,
    restore_endpoint,
    restore_record_key,
    sweep_endpoints,
)
from mlops_common.cost_guard.settings import RESTORE_RECORD_PREFIX


def outcome(summary, name: str) -> tuple[str, str]:
    matches = [(o.action, o.reason) for o in summary.outcomes if o.name == name]
    assert len(matches) == 1, f"{name}: {matches}"
    return matches[0]


def test_invocations_on_the_second_variant_keep_the_endpoint(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("two-variants-used", variants=("blue", "green"))
    aws.endpoint("two-variants-idle", variants=("blue", "green"))
    aws.invocations("two-variants-used", "green", 7, NOW - timedelta(hours=2))
    # Traffic on the other endpoint's variant name must not count for this one.
    aws.invocations("other", "blue", 100, NOW - timedelta(hours=2))

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "two-variants-used") == ("kept", "7 invocations in the last 24 h")
    assert outcome(summary, "two-variants-idle")[0] == "deleted"
    assert aws.endpoint_names() == {"two-variants-used"}


def test_invocations_before_the_window_do_not_count(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("used-last-week", age=timedelta(days=10))
    aws.invocations("used-last-week", "AllTraffic", 50, NOW - timedelta(days=3))

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "used-last-week")[0] == "deleted"


def test_a_brand_new_idle_endpoint_is_kept_for_the_grace_period(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("fresh", age=timedelta(hours=2))
    aws.endpoint("old", age=timedelta(hours=30))

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "fresh") == ("kept", "created or updated within the grace period")
    assert outcome(summary, "old")[0] == "deleted"
    assert aws.endpoint_names() == {"fresh"}


def test_old_idle_endpoint_is_deleted_then_restored(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("churn-model", tags={"team": "risk", "cost-centre": "42"}, instance_type="ml.m5.xlarge")

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "churn-model")[0] == "deleted"
    assert summary.saving("deleted") == pytest.approx(0.23)
    assert "churn-model" not in aws.endpoint_names()
    # Config and model stay, the record says how to come back.
    aws.sagemaker.describe_endpoint_config(EndpointConfigName="churn-model-config")
    aws.sagemaker.describe_model(ModelName="churn-model-model")
    body = aws.s3.get_object(Bucket=BUCKET, Key=f"{RESTORE_RECORD_PREFIX}churn-model.json")["Body"].read()
    record = json.loads(body)
    assert record["endpoint_config_name"] == "churn-model-config"

    result = restore_endpoint(aws.sagemaker, aws.s3, BUCKET, "churn-model", NOW)

    assert result.status == "restoring"
    restored = aws.sagemaker.describe_endpoint(EndpointName="churn-model")
    assert restored["EndpointConfigName"] == "churn-model-config"
    tags = aws.sagemaker.list_tags(ResourceArn=restored["EndpointArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "risk", "cost-centre": "42"}
    # A second call is harmless.
    assert restore_endpoint(aws.sagemaker, aws.s3, BUCKET, "churn-model", NOW).status == "already_exists"


def test_restore_explains_what_is_missing(aws: Aws, endpoint_settings) -> None:
    with pytest.raises(RestoreError, match="no cost-guard record for endpoint 'never-deleted'"):
        restore_endpoint(aws.sagemaker, aws.s3, BUCKET, "never-deleted", NOW)
    with pytest.raises(RestoreError, match="not a SageMaker endpoint name"):
        restore_endpoint(aws.sagemaker, aws.s3, BUCKET, "bad name!", NOW)

    aws.endpoint("gone-config")
    sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)
    aws.sagemaker.delete_endpoint_config(EndpointConfigName="gone-config-config")
    with pytest.raises(RestoreError, match=r"endpoint config 'gone-config-config' .* no longer exists"):
        restore_endpoint(aws.sagemaker, aws.s3, BUCKET, "gone-config", NOW)


def test_restore_without_list_permission_still_explains_the_missing_record(aws: Aws) -> None:
    # Without s3:ListBucket, S3 answers a missing key with 403 AccessDenied, not 404 NoSuchKey.
    s3 = boto3.client("s3", region_name="us-east-1")
    stubber = Stubber(s3)
    stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    with stubber, pytest.raises(RestoreError, match=r"no cost-guard record .*AccessDenied"):
        restore_endpoint(aws.sagemaker, s3, BUCKET, "never-deleted", NOW)


def test_restore_while_the_deletion_is_still_running_says_to_retry(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("slow-delete")
    sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)
    # AWS shows a deleted endpoint as Deleting for minutes; moto removes it at once.
    aws.endpoint("slow-delete")
    aws.set_endpoint("slow-delete", status="Deleting")

    with pytest.raises(RestoreError, match="still being deleted"):
        restore_endpoint(aws.sagemaker, aws.s3, BUCKET, "slow-delete", NOW)


def test_opt_out_tag_is_honoured(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("pinned", tags={"cost-guard:keep-running": "TRUE"})
    aws.endpoint("not-pinned", tags={"cost-guard:keep-running": "false"})

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "pinned") == ("skipped", "opted out with tag cost-guard:keep-running=true")
    assert outcome(summary, "not-pinned")[0] == "deleted"


def test_a_prod_stage_endpoint_is_kept_and_its_staging_endpoint_swept(aws: Aws, endpoint_settings) -> None:
    from mlops_common.pipeline.deploy import stage_tags

    # The tags the deploy workflow creates each stage's endpoint with (Stages=staging-prod, docs/stages.md).
    aws.endpoint("iris", tags={t["Key"]: t["Value"] for t in stage_tags("prod")})
    aws.endpoint("iris--staging", tags={t["Key"]: t["Value"] for t in stage_tags("staging")})

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "iris") == ("skipped", "opted out with tag cost-guard:keep-running=true")
    assert outcome(summary, "iris--staging")[0] == "deleted"


def test_scope_limits_the_sweep_to_tagged_endpoints(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("team-a", tags={"cost-guard:scope": "team-a"})
    aws.endpoint("team-b", tags={"cost-guard:scope": "team-b"})
    aws.endpoint("untagged")

    settings = with_common(endpoint_settings, scope="team-a")
    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, settings, NOW)

    assert outcome(summary, "team-a")[0] == "deleted"
    assert outcome(summary, "team-b")[0] == "skipped"
    assert aws.endpoint_names() == {"team-b", "untagged"}


def test_prod_only_reports_unless_the_endpoint_allows_deletion(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("prod-idle")
    aws.endpoint("prod-idle-allowed", tags={"cost-guard:allow-delete": "true"})

    settings = with_common(endpoint_settings, environment="prod")
    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, settings, NOW)

    action, reason = outcome(summary, "prod-idle")
    assert action == "reported"
    assert "cost-guard:allow-delete=true" in reason
    assert outcome(summary, "prod-idle-allowed")[0] == "deleted"
    assert aws.endpoint_names() == {"prod-idle"}
    assert summary.worth_notifying


def test_dry_run_changes_nothing(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("idle-a")
    aws.endpoint("idle-b", instance_type="ml.g4dn.xlarge")

    settings = with_common(endpoint_settings, dry_run=True)
    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, settings, NOW)

    assert {o.action for o in summary.outcomes} == {"would_delete"}
    assert aws.endpoint_names() == {"idle-a", "idle-b"}
    assert aws.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    report = summary.to_dict()
    assert report["estimated_hourly_saving_usd"] == 0
    assert report["estimated_hourly_saving_if_applied_usd"] == pytest.approx(0.115 + 0.7364)


def test_serverless_endpoints_are_skipped_and_changing_ones_not_listed(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("serverless", serverless=True)
    aws.endpoint("creating")
    aws.set_endpoint("creating", status="Creating")
    aws.endpoint("updating")
    aws.set_endpoint("updating", status="Updating")
    filters: list[str | None] = []
    aws.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.ListEndpoints",
        lambda params, **_: filters.append(params.get("StatusEquals")),
    )

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert filters == ["InService"]  # filtered by SageMaker, not in Python
    assert outcome(summary, "serverless") == ("skipped", "serverless: billed per request, no idle cost")
    assert {o.name for o in summary.outcomes} == {"serverless"}
    assert summary.examined == 1
    assert aws.endpoint_names() == {"serverless", "creating", "updating"}


def test_more_than_one_page_is_swept_with_one_metrics_call(aws: Aws, endpoint_settings) -> None:
    names = [aws.endpoint(f"ep-{i:03d}") for i in range(105)]  # ListEndpoints pages at 100
    aws.invocations("ep-104", "AllTraffic", 1, NOW - timedelta(minutes=5))
    calls: list[int] = []
    aws.cloudwatch.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: calls.append(len(params["MetricDataQueries"])),
    )

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert summary.examined == 105
    assert calls == [105]
    assert len(summary.with_action("deleted")) == 104
    assert aws.endpoint_names() == {names[-1]}


def test_one_endpoint_changing_during_the_sweep_is_a_skip_not_a_failure(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("racing")
    aws.endpoint("calm")
    # moto deletes any endpoint; AWS refuses one that someone started updating after the sweep listed it.
    stubber = fail_for(
        aws.sagemaker, "delete_endpoint", EndpointName="racing", message="Cannot update in-progress endpoint"
    )

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    action, reason = outcome(summary, "racing")
    assert action == "skipped"
    assert "Cannot update in-progress endpoint" in reason
    assert outcome(summary, "calm")[0] == "deleted"
    stubber.assert_no_pending_responses()


def test_an_unexpected_aws_error_is_reported_and_the_sweep_goes_on(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("throttled")
    aws.endpoint("fine")
    fail_for(aws.sagemaker, "delete_endpoint", EndpointName="throttled", code="ThrottlingException")

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "throttled")[0] == "error"
    assert outcome(summary, "fine")[0] == "deleted"
    assert summary.to_dict()["errors"][0]["name"] == "throttled"


def test_an_endpoint_whose_config_is_gone_is_not_deleted(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("orphan")
    aws.sagemaker.delete_endpoint_config(EndpointConfigName="orphan-config")

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    action, reason = outcome(summary, "orphan")
    assert action == "error"
    assert reason.startswith("endpoint config unreadable, so not deleted")
    assert aws.endpoint_names() == {"orphan"}


def test_without_metrics_nothing_is_deleted(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("idle-but-unknown")
    broken = boto3.client("cloudwatch", region_name="us-east-1")
    stubber = Stubber(broken)
    stubber.add_client_error(
        "get_metric_data", service_error_code="InternalServiceError", http_status_code=500
    )

    with stubber:
        summary = sweep_endpoints(aws.sagemaker, broken, aws.s3, endpoint_settings, NOW)

    action, reason = outcome(summary, "idle-but-unknown")
    assert action == "error"
    assert reason.startswith("invocations unreadable, kept")
    assert aws.endpoint_names() == {"idle-but-unknown"}


def test_async_and_inference_component_endpoints_are_not_swept(aws: Aws, endpoint_settings) -> None:
    aws.endpoint("async-queue", async_inference=True)
    aws.endpoint("components")
    # Configs for inference components have variants without ModelName (moto needs one to create it).
    backend().endpoint_configs["components-config"].production_variants[0].pop("ModelName")

    summary = sweep_endpoints(aws.sagemaker, aws.cloudwatch, aws.s3, endpoint_settings, NOW)

    assert outcome(summary, "async-queue")[1].startswith("asynchronous inference endpoint")
    assert outcome(summary, "components")[1].startswith("inference-component endpoint")
    assert {o.action for o in summary.outcomes} == {"skipped"}
    assert aws.endpoint_names() == {"async-queue", "components"}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"{not json", r"is not JSON \(Expecting property name"),
        (b'["churn"]', "is a JSON list, not an object"),
        (b'{"endpoint_name": "other"}', "names endpoint 'other', not 'churn'"),
        (b'{"endpoint_name": "churn"}', "has no valid endpoint_config_name \\(found None\\)"),
        (
            b'{"endpoint_name": "churn", "endpoint_config_name": "churn-config", "tags": [{"Key": 1}]}',
            "has tags that are not a list of",
        ),
    ],
)
def test_restore_from_a_malformed_record_names_the_record_and_the_problem(
    aws: Aws, body: bytes, complaint: str
) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=restore_record_key("churn"), Body=body)
    with pytest.raises(RestoreError, match=complaint) as raised:
        restore_endpoint(aws.sagemaker, aws.s3, BUCKET, "churn", NOW)
    assert f"s3://{BUCKET}/{restore_record_key('churn')}" in str(raised.value)
