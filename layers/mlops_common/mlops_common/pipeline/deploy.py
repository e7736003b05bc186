"""Plan a deployment of a model package: what the deploy state machine creates, and how it rolls out.

Everything comes from the package (InferenceSpecification + CustomerMetadataProperties written at
registration), so the pipeline (auto approval) and the approval listener (manual) deploy identically.

One rollout per endpoint at a time (docs/pipeline.md, "Rollouts"): a deployment first takes the endpoint's
lease (rollout_lease); while another deployment holds it, it waits. Once it holds the lease, a deployment the
pipeline started is gated again against the model serving now, and ends "superseded" if that one is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.cost_guard.settings import OPT_OUT_TAG
from mlops_common.pipeline import gate, naming, registry, report, rollout_lease
from mlops_common.pipeline.gate import PACKAGE_TAG
from mlops_common.pipeline.registry import STACK_PROPERTY

VARIANT_NAME = "AllTraffic"
# Alarms that roll an update back (AutoRollbackConfiguration); metrics per endpoint + variant.
# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
ERRORS_ALARM_SUFFIX = "-5xx-errors"
LATENCY_ALARM_SUFFIX = "-model-latency"
LATENCY_THRESHOLD_MICROSECONDS = 2_000_000
# Blue/green: MaximumExecutionTimeoutInSeconds must be 600-28800.
MAX_EXECUTION_TIMEOUT = 3600
SERVERLESS_DEPLOY_TIMEOUT = 1800
# Statuses that end by themselves: try again later. Failed and UpdateRollbackFailed need a person.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html#sagemaker-DescribeEndpoint-response-EndpointStatus
_BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
# What the rest of a deployment may take beyond the endpoint wait (model, config, smoke test, tags).
LEASE_MARGIN_SECONDS = 900
# PrepareDeployment's answer: roll out now, wait for the endpoint's lease, or stop (a better model serves).
READY, WAITING, SUPERSEDED = "ready", "waiting", "superseded"
# Who asked: a run (gated again against the serving model), a person (approval, or the CLI's rollback), or
# a promotion from staging to prod (deployed as asked: it passed the gate and the soak on staging).
SOURCES = ("pipeline", "approval", "rollback", "promotion")
# The stage an endpoint serves (docs/stages.md), tagged when the deployment creates it.
STAGE_TAG = "mlops:stage"


class EndpointBusyError(RuntimeError):
    """The endpoint is changing; the state machine retries later."""


class EndpointFailedError(RuntimeError):
    """A Failed or UpdateRollbackFailed endpoint cannot be updated; the message says what to do."""


@dataclass(frozen=True)
class DeployRequest:
    """The deploy workflow's input: which package, who asked, and (optionally) another endpoint to serve it
    on, e.g. a later stage's; by default the endpoint the package was registered for."""

    package_arn: str
    source: str = "pipeline"
    endpoint_name: str | None = None
    stage: str | None = None

    @classmethod
    def from_input(cls, data: Any) -> DeployRequest:
        if not isinstance(data, dict) or not isinstance(data.get("modelPackageArn"), str):
            raise PackageNotDeployableError(
                'deploy input must be {"modelPackageArn": "arn:aws:sagemaker:...", "source": "pipeline"|'
                f'"approval", "endpointName": "<optional>"}}, got {str(data)[:200]}'
            )
        source = data.get("source", "pipeline")
        if source not in SOURCES:
            raise PackageNotDeployableError(f"source {source!r} must be one of {', '.join(SOURCES)}")
        endpoint = data.get("endpointName")
        if endpoint is not None and not (
            isinstance(endpoint, str) and naming.is_valid_sagemaker_name(endpoint)
        ):
            raise PackageNotDeployableError(
                f"endpointName {endpoint!r} is not a SageMaker endpoint name (1-63 characters, "
                "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})"
            )
        stage = data.get("stage")
        if stage is not None and stage not in naming.STAGES:
            raise PackageNotDeployableError(f"stage {stage!r} must be one of {', '.join(naming.STAGES)}")
        return cls(data["modelPackageArn"], source, endpoint, stage)


def stage_tags(stage: str | None) -> list[dict[str, str]]:
    """Tags a stage's endpoint carries. Prod opts out of the cost guard's idle deletion (as a person's
    `cost-guard:keep-running` would); staging may be swept and restored (`mlops restore`)."""
    if stage is None:
        return []
    tags = [{"Key": STAGE_TAG, "Value": stage}]
    if stage == naming.PROD:
        tags.append({"Key": OPT_OUT_TAG, "Value": "true"})
    return tags


class PackageNotDeployableError(ValueError):
    """The package lacks what a deployment needs, or is not Approved."""


def ensure_alarms(cloudwatch: Any, endpoint_name: str, variant: str = VARIANT_NAME) -> list[str]:
    """Create or update the two rollback alarms (PutMetricAlarm is an upsert)."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
    alarms: list[dict[str, Any]] = [
        {
            "AlarmName": f"{endpoint_name}{ERRORS_ALARM_SUFFIX}",
            "AlarmDescription": f"5XX errors on {endpoint_name}: rolls back a blue/green update",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "EvaluationPeriods": 1,
        },
        {
            "AlarmName": f"{endpoint_name}{LATENCY_ALARM_SUFFIX}",
            "AlarmDescription": f"Model latency above {LATENCY_THRESHOLD_MICROSECONDS} us on {endpoint_name}",
            "MetricName": "ModelLatency",
            "Statistic": "Average",
            "Threshold": float(LATENCY_THRESHOLD_MICROSECONDS),
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 2,
        },
    ]
    for alarm in alarms:
        cloudwatch.put_metric_alarm(
            **alarm,
            Namespace="AWS/SageMaker",
            Dimensions=dimensions,
            Period=60,
            TreatMissingData="notBreaching",
        )
    return [alarm["AlarmName"] for alarm in alarms]


def _int(properties: dict[str, str], name: str, default: int) -> int:
    try:
        return int(float(properties.get(name, default)))
    except ValueError:
        return default


def deployment_config(
    rollout: str, step_percent: int, wait_seconds: int, alarms: list[str]
) -> dict[str, Any]:
    routing: dict[str, Any] = {"Type": rollout.upper(), "WaitIntervalInSeconds": wait_seconds}
    size = {"Type": "CAPACITY_PERCENT", "Value": step_percent}
    if rollout == "canary":
        routing["CanarySize"] = size
    elif rollout == "linear":
        routing["LinearStepSize"] = size
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": wait_seconds,
            "MaximumExecutionTimeoutInSeconds": MAX_EXECUTION_TIMEOUT,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarms]},
    }


def _deployable_package(sagemaker: Any, package_arn: str, stack_name: str) -> dict[str, Any]:
    package: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=package_arn)
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise PackageNotDeployableError(f"{package_arn} is {status}; only Approved packages are deployed")
    properties = package.get("CustomerMetadataProperties", {})
    if properties.get(STACK_PROPERTY) != stack_name:
        raise PackageNotDeployableError(
            f"{package_arn} was registered by stack {properties.get(STACK_PROPERTY)!r}, not {stack_name}"
        )
    if not package.get("InferenceSpecification", {}).get("Containers") or "endpoint-name" not in properties:
        raise PackageNotDeployableError(
            f"{package_arn} was not registered by this pipeline (no container or endpoint-name property)"
        )
    return package


def _endpoint_now(sagemaker: Any, endpoint: str) -> dict[str, Any] | None:
    """The endpoint as it is, None when it does not exist; raises when no rollout can start on it now."""
    try:
        existing: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if error_code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        return None
    status = existing["EndpointStatus"]
    if status in _BUSY:
        raise EndpointBusyError(f"endpoint {endpoint} is {status}; retrying later")
    if status in ("Failed", "UpdateRollbackFailed"):
        reason = existing.get("FailureReason", "no reason given")
        fix = (
            f"delete it (aws sagemaker delete-endpoint --endpoint-name {endpoint})"
            if status == "Failed"
            else "point it at a working config (aws sagemaker update-endpoint --endpoint-name "
            f"{endpoint} --endpoint-config-name <config>) or delete it"
        )
        raise EndpointFailedError(
            f"endpoint {endpoint} is {status} ({reason}) and cannot be updated; it needs a person: {fix}, "
            "then approve the package again or re-run the dataset"
        )
    return existing


def _wait_budget(properties: dict[str, str]) -> tuple[int, int, int]:
    """(seconds between endpoint checks, seconds a rollout may take, traffic shifting wait)."""
    wait_seconds = max(1, _int(properties, "endpoint-wait-seconds", 30))
    rollout_wait = _int(properties, "rollout-wait-seconds", 300)
    serverless = properties.get("deploy-mode", "serverless") == "serverless"
    budget = SERVERLESS_DEPLOY_TIMEOUT if serverless else MAX_EXECUTION_TIMEOUT + rollout_wait + 600
    return wait_seconds, budget, rollout_wait


def prepare(
    sagemaker: Any,
    cloudwatch: Any,
    dynamodb: Any,
    sfn: Any,
    request: DeployRequest,
    *,
    stack_name: str,
    lease_table: str,
    execution_arn: str,
    now: int,
) -> dict[str, Any]:
    """Take the endpoint's lease, gate again against the serving model, then plan the rollout.

    status "waiting": another deployment holds the endpoint (the workflow waits and asks again);
    "superseded": a better model serves now (nothing changes); "ready": the plan below."""
    package = _deployable_package(sagemaker, request.package_arn, stack_name)
    properties = package.get("CustomerMetadataProperties", {})
    endpoint = request.endpoint_name or properties["endpoint-name"]
    # An approval or a rollback names no stage: a staging endpoint's name says it (naming.py).
    stage = request.stage or (naming.STAGING if endpoint.endswith(naming.STAGING_SUFFIX) else None)
    request = replace(request, stage=stage)
    wait_seconds, budget, _ = _wait_budget(properties)
    base: dict[str, Any] = {
        "packageArn": request.package_arn,
        "source": request.source,
        "stage": request.stage,
        "dataset": properties.get("dataset", ""),
        "runId": properties.get("run-id", ""),
        "endpointName": endpoint,
        "waitSeconds": wait_seconds,
    }
    lease = rollout_lease.acquire(
        dynamodb,
        sfn,
        table=lease_table,
        endpoint=endpoint,
        execution_arn=execution_arn,
        package_arn=request.package_arn,
        seconds=budget + LEASE_MARGIN_SECONDS,
        now=now,
    )
    if not lease.acquired:
        return {**base, "status": WAITING, "heldBy": lease.holder, "heldFor": lease.package_arn}
    if request.source == "pipeline":  # a person's approval (or a rollback by approval) is deployed as asked
        recheck = gate.recheck_champion(sagemaker, endpoint, request.package_arn, properties)
        if recheck is not None and not recheck.passed:
            return {
                **base,
                "status": SUPERSEDED,
                "reason": f"superseded: {recheck.reason}",
                "championPackageArn": recheck.champion_package_arn,
            }
    existing = _endpoint_now(sagemaker, endpoint)
    return {
        **base,
        **_rollout(
            cloudwatch,
            package,
            endpoint=endpoint,
            existing=existing,
            stack_name=stack_name,
            stage=request.stage,
        ),
    }


def _rollout(
    cloudwatch: Any,
    package: dict[str, Any],
    *,
    endpoint: str,
    existing: dict[str, Any] | None,
    stack_name: str,
    stage: str | None = None,
) -> dict[str, Any]:
    properties = package.get("CustomerMetadataProperties", {})
    package_arn = package["ModelPackageArn"]
    container = package["InferenceSpecification"]["Containers"][0]
    partition, region, account = (
        package_arn.split(":")[1],
        package_arn.split(":")[3],
        package_arn.split(":")[4],
    )
    serverless = properties.get("deploy-mode", "serverless") == "serverless"
    wait_seconds, budget, rollout_wait = _wait_budget(properties)
    if serverless:
        variant: dict[str, Any] = {
            "VariantName": VARIANT_NAME,
            "ServerlessConfig": {
                "MemorySizeInMB": _int(properties, "serverless-memory-mb", 2048),
                "MaxConcurrency": _int(properties, "serverless-max-concurrency", 5),
            },
        }
    else:
        variant = {
            "VariantName": VARIANT_NAME,
            "InstanceType": properties.get("endpoint-instance-type", "ml.m5.large"),
            "InitialInstanceCount": _int(properties, "endpoint-instance-count", 1),
            "InitialVariantWeight": 1,
        }
    action = "update" if existing else "create"
    alarms = ensure_alarms(cloudwatch, endpoint) if not serverless else []
    config = None
    if action == "update" and not serverless:
        config = deployment_config(
            properties.get("rollout", "all_at_once"),
            _int(properties, "rollout-step-percent", 20),
            rollout_wait,
            alarms,
        )
    return {
        "status": READY,
        "endpointArn": f"arn:{partition}:sagemaker:{region}:{account}:endpoint/{endpoint.lower()}",
        "action": action,
        "serverless": serverless,
        "previousConfig": existing["EndpointConfigName"] if existing else None,
        "names": {
            "prefix": naming.deploy_prefix(stack_name, properties.get("dataset", endpoint), package_arn)
        },
        "container": {
            "Image": container["Image"],
            "ModelDataUrl": container["ModelDataUrl"],
            "Environment": container.get("Environment", {}),
        },
        "variant": variant,
        "deploymentConfig": config,
        "alarms": alarms,
        "maxPolls": max(1, math.ceil(budget / wait_seconds)),
        "smoke": {
            "testDataUri": properties.get("test-data-uri"),
            "schemaUri": properties.get("schema-uri"),
            "rows": _int(properties, "smoke-test-rows", 50),
            "metrics": gate.recorded_metrics(properties),
        },
        "tags": [{"Key": "mlops:stack", "Value": stack_name}, *stage_tags(stage)],
        # Set on the endpoint only after the smoke test passed: the package tag names the champion. The stage
        # tags again, as an update keeps the tags the endpoint was created with: a stack switched to two
        # stages serves prod from its old endpoint, which must gain prod's cost-guard opt-out too.
        "servingTags": [{"Key": PACKAGE_TAG, "Value": package_arn}, *stage_tags(stage)],
    }


OUTCOMES = ("deployed", "failed", "superseded")


def finish(
    sagemaker: Any,
    dynamodb: Any,
    *,
    outcome: str,
    state: dict[str, Any],
    lease_table: str,
    execution_arn: str,
) -> dict[str, Any]:
    """Every exit of the deploy workflow: give the endpoint's lease back and tag the package with the
    outcome and its cause. Recording is best effort (the notification carries the same facts)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} must be one of {', '.join(OUTCOMES)}")
    deploy_state = state.get("deploy")
    plan: dict[str, Any] = deploy_state if isinstance(deploy_state, dict) else {}
    package_arn = plan.get("packageArn") or state.get("modelPackageArn")
    endpoint = plan.get("endpointName") or state.get("endpointName")
    if outcome == "deployed":
        detail = (
            f"serving on {endpoint} with endpoint config {(state.get('endpointConfig') or {}).get('name')}"
        )
    elif outcome == "superseded":
        detail = str(plan.get("reason") or "superseded")
    else:
        notification = state.get("notification")
        notified: dict[str, Any] = notification if isinstance(notification, dict) else {}
        detail = str(notified.get("cause") or ": ".join(report.failure(state)[k] for k in ("step", "cause")))
    result: dict[str, Any] = {"outcome": outcome, "detail": detail, "released": False, "recorded": False}
    if not endpoint and package_arn:
        try:
            described = sagemaker.describe_model_package(ModelPackageName=package_arn)
            endpoint = described.get("CustomerMetadataProperties", {}).get("endpoint-name")
        except ClientError as error:
            result["note"] = f"package unreadable: {error_code(error)}"
    if endpoint:
        result["released"] = rollout_lease.release(
            dynamodb, table=lease_table, endpoint=endpoint, execution_arn=execution_arn
        )
    if package_arn:
        try:
            registry.record_deployment_outcome(
                sagemaker,
                package_arn,
                outcome=outcome,
                detail=detail,
                endpoint=endpoint or "",
                execution=execution_arn.rsplit(":", 1)[-1],
            )
            result["recorded"] = True
        except ClientError as error:
            result["note"] = f"outcome not recorded on {package_arn}: {error_code(error)}"
    return result
