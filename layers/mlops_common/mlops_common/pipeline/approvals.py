"""Deploy manually approved model packages, exactly once per package version."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.pipeline import naming
from mlops_common.pipeline.starter import execution_exists

DEPLOY_STARTED = "started"
DUPLICATE = "duplicate"
IGNORED = "ignored"


def deploy_execution_name(package_arn: str, group: str, version: int | str) -> str:
    """Deterministic per package version, so a redelivered event starts nothing. max: 60+2+5+1+12 = 80"""
    return f"{naming.slug(group, 60)}-v{str(version)[:5]}-{naming.short_hash(package_arn, 12)}"


def _ignore_reason(detail: dict[str, Any], stack_name: str) -> str | None:
    if not detail.get("ModelPackageArn") or detail.get("ModelApprovalStatus") != "Approved":
        return f"status {detail.get('ModelApprovalStatus')!r} is not Approved"
    group = detail.get("ModelPackageGroupName", "")
    if not group.startswith(f"{stack_name}-"):
        return f"group {group} does not belong to stack {stack_name}"
    return None


def handle_approval(
    detail: dict[str, Any], *, sagemaker: Any, sfn: Any, deploy_state_machine_arn: str, stack_name: str
) -> dict[str, Any]:
    """Start the deploy machine for a package approved by a person; auto-approved ones deploy inline."""
    reason = _ignore_reason(detail, stack_name)
    if reason:
        return {"outcome": IGNORED, "reason": reason}
    arn, group = detail["ModelPackageArn"], detail["ModelPackageGroupName"]
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    mode = package.get("CustomerMetadataProperties", {}).get("approval-mode")
    if mode != "manual" or package.get("ModelApprovalStatus") != "Approved":
        return {
            "outcome": IGNORED,
            "reason": f"approval mode {mode!r}, status {package.get('ModelApprovalStatus')}: only manual "
            "approvals are deployed here (the pipeline deploys auto-approved packages itself)",
        }
    name = deploy_execution_name(
        arn, group, detail.get("ModelPackageVersion", package.get("ModelPackageVersion"))
    )
    if execution_exists(sfn, deploy_state_machine_arn, name):
        return {"outcome": DUPLICATE, "reason": "deployment already started", "executionName": name}
    try:
        execution = sfn.start_execution(
            stateMachineArn=deploy_state_machine_arn,
            name=name,
            input=json.dumps({"modelPackageArn": arn, "source": "approval"}),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            return {"outcome": DUPLICATE, "reason": "deployment already started", "executionName": name}
        raise
    return {"outcome": DEPLOY_STARTED, "executionName": name, "executionArn": execution["executionArn"]}
