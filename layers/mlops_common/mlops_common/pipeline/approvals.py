"""Deploy model packages a person approves: once per approval, including an older package approved again
(rollback by approval).

SageMaker sends "Model Package State Change" for every create and update of a package, with the package as it
is now (no previous status). So an approval is identified by the package and its LastModifiedTime: a
redelivered event carries the same pair and starts nothing; approving the same package again later is a new
update, hence a new deployment. The deploy workflow records outcomes as tags, which send no event.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.pipeline import naming
from mlops_common.pipeline.gate import find_champion
from mlops_common.pipeline.registry import STACK_PROPERTY
from mlops_common.pipeline.starter import execution_status

DEPLOY_STARTED = "started"
DUPLICATE = "duplicate"
IGNORED = "ignored"


def deploy_execution_name(package_arn: str, group: str, version: int | str, approved_at: str) -> str:
    """One name per approval of a package version. max: 60 + 2 + 5 + 1 + 12 = 80"""
    approval = naming.short_hash(f"{package_arn}@{approved_at}", 12)
    return f"{naming.slug(group, 60)}-v{str(version)[:5]}-{approval}"


def _ignore_reason(detail: dict[str, Any], stack_name: str) -> str | None:
    if not detail.get("ModelPackageArn") or detail.get("ModelApprovalStatus") != "Approved":
        return f"status {detail.get('ModelApprovalStatus')!r} is not Approved"
    group = detail.get("ModelPackageGroupName", "")
    if not group.startswith(f"{stack_name}-"):
        return f"group {group} does not belong to stack {stack_name}"
    return None


def _changed_after_creation(detail: dict[str, Any]) -> bool:
    modified = detail.get("LastModifiedTime")
    return modified is not None and str(modified) != str(detail.get("CreationTime"))


def _package_ignore_reason(
    sagemaker: Any, detail: dict[str, Any], package: dict[str, Any], stack_name: str
) -> str | None:
    properties = package.get("CustomerMetadataProperties", {})
    if properties.get(STACK_PROPERTY) != stack_name:
        return f"package registered by stack {properties.get(STACK_PROPERTY)!r}, not {stack_name}"
    if package.get("ModelApprovalStatus") != "Approved":
        return f"status is now {package.get('ModelApprovalStatus')}"
    if properties.get("approval-mode") != "manual" and not _changed_after_creation(detail):
        # An auto-approved package is created Approved and deployed by its run; a later update is a person's.
        return "created Approved (auto mode): its run deploys it"
    endpoint = properties.get("endpoint-name", "")
    champion = find_champion(sagemaker, endpoint) if endpoint else None
    if champion is not None and champion.package_arn == package.get("ModelPackageArn"):
        return f"{endpoint} already serves {champion.package_arn}"
    return None


def handle_approval(
    detail: dict[str, Any], *, sagemaker: Any, sfn: Any, deploy_state_machine_arn: str, stack_name: str
) -> dict[str, Any]:
    """Start the deploy workflow for a package a person approved (again)."""
    reason = _ignore_reason(detail, stack_name)
    if reason:
        return {"outcome": IGNORED, "reason": reason}
    arn, group = detail["ModelPackageArn"], detail["ModelPackageGroupName"]
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    reason = _package_ignore_reason(sagemaker, detail, package, stack_name)
    if reason:
        return {"outcome": IGNORED, "reason": reason}
    approved_at = str(detail.get("LastModifiedTime") or package.get("LastModifiedTime") or "")
    name = deploy_execution_name(
        arn, group, detail.get("ModelPackageVersion", package.get("ModelPackageVersion")), approved_at
    )
    # StartExecution with a running execution's name and input returns that execution instead of failing.
    if execution_status(sfn, deploy_state_machine_arn, name) is not None:
        return {
            "outcome": DUPLICATE,
            "reason": "this approval's deployment already started",
            "executionName": name,
        }
    try:
        execution = sfn.start_execution(
            stateMachineArn=deploy_state_machine_arn,
            name=name,
            input=json.dumps({"modelPackageArn": arn, "source": "approval"}),
        )
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":
            return {
                "outcome": DUPLICATE,
                "reason": "this approval's deployment already started",
                "executionName": name,
            }
        raise
    return {"outcome": DEPLOY_STARTED, "executionName": name, "executionArn": execution["executionArn"]}
