"""Deploy manually approved model packages, exactly once per package version."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.pipeline import naming
from mlops_common.pipeline.registry import STACK_PROPERTY
from mlops_common.pipeline.starter import execution_status

DEPLOY_STARTED = "started"
DUPLICATE = "duplicate"
IGNORED = "ignored"
# Deployments of one package version after failed ones (each needs a new approval event).
MAX_DEPLOY_ATTEMPTS = 20


def deploy_execution_name(package_arn: str, group: str, version: int | str) -> str:
    """Deterministic per package version, so a redelivered event starts nothing. max: 60+2+5+1+12 = 80"""
    return f"{naming.slug(group, 60)}-v{str(version)[:5]}-{naming.short_hash(package_arn, 12)}"


def free_execution_name(sfn: Any, state_machine_arn: str, base: str) -> str | None:
    """The name for this package version's next deployment, or None when one is running or succeeded.

    Redelivered events find the running or finished deployment; after a failed one (e.g. a Failed endpoint
    that was deleted since), approving the package again deploys it again as '-r2', '-r3', ... (at most 80).
    """
    name = base
    for attempt in range(2, MAX_DEPLOY_ATTEMPTS + 2):
        status = execution_status(sfn, state_machine_arn, name)
        if status is None:
            return name
        if status in ("RUNNING", "SUCCEEDED", "PENDING_REDRIVE"):
            return None
        suffix = f"-r{attempt}"
        name = f"{base[: naming.EXECUTION_NAME_MAX - len(suffix)]}{suffix}"
    return None


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
    owner = package.get("CustomerMetadataProperties", {}).get(STACK_PROPERTY)
    if owner != stack_name:
        return {"outcome": IGNORED, "reason": f"package registered by stack {owner!r}, not {stack_name}"}
    mode = package.get("CustomerMetadataProperties", {}).get("approval-mode")
    if mode != "manual" or package.get("ModelApprovalStatus") != "Approved":
        return {
            "outcome": IGNORED,
            "reason": f"approval mode {mode!r}, status {package.get('ModelApprovalStatus')}: only manual "
            "approvals are deployed here (the pipeline deploys auto-approved packages itself)",
        }
    base = deploy_execution_name(
        arn, group, detail.get("ModelPackageVersion", package.get("ModelPackageVersion"))
    )
    name = free_execution_name(sfn, deploy_state_machine_arn, base)
    if name is None:
        return {"outcome": DUPLICATE, "reason": "deployment already started or done", "executionName": base}
    try:
        execution = sfn.start_execution(
            stateMachineArn=deploy_state_machine_arn,
            name=name,
            input=json.dumps({"modelPackageArn": arn, "source": "approval"}),
        )
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":
            return {"outcome": DUPLICATE, "reason": "deployment already started", "executionName": name}
        raise
    return {"outcome": DEPLOY_STARTED, "executionName": name, "executionArn": execution["executionArn"]}
