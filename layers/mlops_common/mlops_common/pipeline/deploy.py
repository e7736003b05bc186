"""Plan a deployment of a model package: what the deploy state machine creates, and how it rolls out.

Everything comes from the package (InferenceSpecification + CustomerMetadataProperties written at
registration), so the pipeline (auto approval) and the approval listener (manual) deploy identically.
"""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.pipeline import naming
from mlops_common.pipeline.gate import METRIC_PROPERTY_PREFIX, PACKAGE_TAG
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
_BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")


class EndpointBusyError(RuntimeError):
    """The endpoint is changing; the state machine retries later."""


class EndpointFailedError(RuntimeError):
    """A Failed endpoint cannot be updated; the message says what to do."""


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


def recorded_metrics(properties: dict[str, str]) -> dict[str, float]:
    """The test metrics registered on the package (the smoke test compares the endpoint with them)."""
    metrics = {}
    for key, value in properties.items():
        if key.startswith(METRIC_PROPERTY_PREFIX):
            try:
                metrics[key[len(METRIC_PROPERTY_PREFIX) :]] = float(value)
            except ValueError:
                continue
    return metrics


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


def plan(
    sagemaker: Any, cloudwatch: Any, package_arn: str, stack_name: str, source: str = "pipeline"
) -> dict[str, Any]:
    """What to create, whether to create or update the endpoint, and how long to wait for it."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise PackageNotDeployableError(f"{package_arn} is {status}; only Approved packages are deployed")
    properties = package.get("CustomerMetadataProperties", {})
    if properties.get(STACK_PROPERTY) != stack_name:
        raise PackageNotDeployableError(
            f"{package_arn} was registered by stack {properties.get(STACK_PROPERTY)!r}, not {stack_name}"
        )
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if not containers or "endpoint-name" not in properties:
        raise PackageNotDeployableError(
            f"{package_arn} was not registered by this pipeline (no container or endpoint-name property)"
        )
    container = containers[0]
    endpoint = properties["endpoint-name"]
    partition, region, account = (
        package_arn.split(":")[1],
        package_arn.split(":")[3],
        package_arn.split(":")[4],
    )
    serverless = properties.get("deploy-mode", "serverless") == "serverless"
    try:
        existing = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if error_code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        existing = None
    if existing and existing["EndpointStatus"] in _BUSY:
        raise EndpointBusyError(f"endpoint {endpoint} is {existing['EndpointStatus']}; retrying later")
    if existing and existing["EndpointStatus"] == "Failed":
        raise EndpointFailedError(
            f"endpoint {endpoint} is Failed ({existing.get('FailureReason', 'no reason given')}) and "
            f"cannot be updated; delete it (aws sagemaker delete-endpoint --endpoint-name {endpoint}) "
            "and approve the package again, or re-run the dataset"
        )
    wait_seconds = _int(properties, "endpoint-wait-seconds", 30)
    rollout_wait = _int(properties, "rollout-wait-seconds", 300)
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
    budget = SERVERLESS_DEPLOY_TIMEOUT if serverless else MAX_EXECUTION_TIMEOUT + rollout_wait + 600
    return {
        "packageArn": package_arn,
        "source": source,
        "dataset": properties.get("dataset", ""),
        "runId": properties.get("run-id", ""),
        "endpointName": endpoint,
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
        "waitSeconds": wait_seconds,
        "maxPolls": max(1, math.ceil(budget / wait_seconds)),
        "smoke": {
            "testDataUri": properties.get("test-data-uri"),
            "schemaUri": properties.get("schema-uri"),
            "rows": _int(properties, "smoke-test-rows", 50),
            "metrics": recorded_metrics(properties),
        },
        "tags": [{"Key": "mlops:stack", "Value": stack_name}],
        # Set on the endpoint only after the smoke test passed: the tag names the champion.
        "packageTags": [{"Key": PACKAGE_TAG, "Value": package_arn}],
    }
