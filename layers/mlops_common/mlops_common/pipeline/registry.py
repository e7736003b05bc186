"""Model registry: one model package group per dataset, one package per accepted run.

The package carries everything a later deployment needs (CustomerMetadataProperties), so a manual approval
days later deploys exactly what the run decided, with no other state.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.pipeline import naming
from mlops_common.pipeline.gate import METRIC_PROPERTY_PREFIX
from mlops_common.step_values import GateDecision, Registration, RunState

STACK_PROPERTY = "stack"
APPROVED = "Approved"
PENDING = "PendingManualApproval"
SERVING_CONTENT_TYPES = ["text/csv", "application/json"]
# Deployment settings copied from the run configuration into the package.
DEPLOY_SETTINGS = (
    "approval_mode",
    "deploy_mode",
    "endpoint_instance_type",
    "endpoint_instance_count",
    "serverless_memory_mb",
    "serverless_max_concurrency",
    "rollout",
    "rollout_step_percent",
    "rollout_wait_seconds",
    "endpoint_wait_seconds",
    "smoke_test_rows",
)


def property_value(value: Any) -> str:
    """A CustomerMetadataProperties value SageMaker accepts (pattern and 256 characters)."""
    return naming.safe_value(value, naming.METADATA_VALUE_MAX)


def ensure_group(sagemaker: Any, group: str, dataset: str) -> None:
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=naming.safe_value(f"Models trained on dataset {dataset}", 1024),
        )
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if "already exist" not in message and error.response["Error"].get("Code") != "ResourceInUse":
            raise


def find_package_of_run(sagemaker: Any, group: str, run_id: str) -> dict[str, Any] | None:
    """The package a previous attempt of this run already registered (retries must not register twice)."""
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", [])[:20]:
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if package.get("CustomerMetadataProperties", {}).get("run-id") == run_id:
                return dict(package)
        break  # the newest page is enough: a retry follows its first attempt closely
    return None


def register(
    sagemaker: Any,
    *,
    run: RunState,
    model_data_url: str,
    evaluation_uri: str,
    metrics: dict[str, float],
    gate: GateDecision,
    stack_name: str,
) -> Registration:
    """Create (or, on retry, find) the run's package: Approved in auto mode, else PendingManualApproval.

    The package names its stack: group names are '<stack>-<dataset>', so 'ml-prod-iris' starts with the
    prefix of a stack 'ml' too, and only this property tells that stack to leave it alone."""
    config = run["config"]
    group = run["names"]["modelPackageGroup"]
    ensure_group(sagemaker, group, run["dataset"])
    approval = APPROVED if config["approval_mode"] == "auto" else PENDING
    existing = find_package_of_run(sagemaker, group, run["runId"])
    if existing:
        return {
            "modelPackageArn": existing["ModelPackageArn"],
            "approvalStatus": existing["ModelApprovalStatus"],
            "modelPackageGroup": group,
            "reused": True,
        }
    properties = {
        STACK_PROPERTY: stack_name,
        "run-id": run["runId"],
        "dataset": property_value(run["dataset"]),
        "endpoint-name": run["names"]["endpoint"],
        "test-data-uri": run["paths"]["test"],
        # The run's input: every object version it trained on (pipeline/snapshot.py).
        "input-manifest": run["source"]["manifest"],
        "schema-uri": run["paths"]["schema"],
        "report-uri": run["paths"].get("report", ""),
        "gate-metric": gate["metric"],
        **{f"{METRIC_PROPERTY_PREFIX}{name}": property_value(value) for name, value in metrics.items()},
        **{name.replace("_", "-"): property_value(config[name]) for name in DEPLOY_SETTINGS},
    }
    response = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=naming.safe_value(f"Run {run['runId']}: {gate['reason']}", 1024),
        InferenceSpecification={
            "Containers": [
                {
                    "Image": run["image"],
                    "ModelDataUrl": model_data_url,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": run["code"]["sourceDir"],
                        "SAGEMAKER_REGION": run["region"],
                    },
                }
            ],
            "SupportedContentTypes": run["data"].get("servingContentTypes") or SERVING_CONTENT_TYPES,
            "SupportedResponseMIMETypes": SERVING_CONTENT_TYPES,
        },
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}
        },
        CustomerMetadataProperties=properties,
        ModelApprovalStatus=approval,
        ClientToken=hashlib.sha256(run["runId"].encode()).hexdigest()[:36],
    )
    return {
        "modelPackageArn": response["ModelPackageArn"],
        "approvalStatus": approval,
        "modelPackageGroup": group,
        "reused": False,
    }


# The last deployment's outcome, as tags on the package: UpdateModelPackage would emit a "Model Package State
# Change" event, which the approval listener must read as a person's (re-)approval.
OUTCOME_TAG = "mlops:deploy-outcome"
OUTCOME_DETAIL_TAG = "mlops:deploy-detail"
OUTCOME_EXECUTION_TAG = "mlops:deploy-execution"
OUTCOME_ENDPOINT_TAG = "mlops:deploy-endpoint"


def record_deployment_outcome(
    sagemaker: Any, package_arn: str, *, outcome: str, detail: str, endpoint: str, execution: str
) -> dict[str, str]:
    """Tag the package with how its latest deployment ended (deployed, failed, superseded) and why."""
    tags = {
        OUTCOME_TAG: outcome,
        OUTCOME_DETAIL_TAG: naming.safe_value(detail, naming.TAG_VALUE_MAX),
        OUTCOME_ENDPOINT_TAG: naming.safe_value(endpoint),
        OUTCOME_EXECUTION_TAG: naming.safe_value(execution),
    }
    sagemaker.add_tags(ResourceArn=package_arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return tags
