"""Seam: SageMaker's EventBridge events and model package updates. Gaps (moto 5.2.5): no "SageMaker Model
Package State Change" event, so a rule that deploys on approval never fires offline; UpdateModelPackage wipes
ModelApprovalStatus, CustomerMetadataProperties and ApprovalDescription when the request does not set them
(AWS keeps them and merges new properties into the old ones).

CreateModelPackage and UpdateModelPackage (from any client, handler or task) put the event AWS sends on the
account's default bus: source `aws.sagemaker`, detail-type `SageMaker Model Package State Change`, resources
[the package ARN], detail = the DescribeModelPackage fields (ModelPackageArn, ModelPackageGroupName,
ModelPackageVersion, ModelApprovalStatus, CustomerMetadataProperties, ...), timestamps as epoch milliseconds.
Like AWS it is sent on creation too, not only on approval, so rules must filter on ModelApprovalStatus.

moto internals touched: `moto.sagemaker.models.SageMakerModelBackend.create_model_package` /
`.update_model_package` (wrapped; both return the package ARN),
`.describe_model_package(...).response_object`, `ModelPackage` attributes;
`moto.events.models.events_backends[...].put_events`.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from offline.seams import _patching
from offline.seams.stepfunctions_sync import jsonable

DETAIL_TYPE = "SageMaker Model Package State Change"


def model_package_event(backend: Any, arn: str) -> dict[str, Any]:
    detail = jsonable(dict(backend.describe_model_package(arn).response_object))
    detail["ModelPackageArn"] = detail.pop("Arn", arn)
    return {
        "Source": "aws.sagemaker",
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail),
        "Resources": [arn],
        "EventBusName": "default",
    }


def _emit(backend: Any, arn: str) -> None:
    from moto.events.models import events_backends

    events_backends[backend.account_id][backend.region_name].put_events([model_package_event(backend, arn)])


def _keep_unchanged_fields(original: Any) -> Any:
    """Put back what the request did not set (moto overwrites those fields with None)."""
    signature = inspect.signature(original)

    def update_model_package(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs).arguments
        arn = call["model_package_arn"]
        package = self.model_packages.get(self.model_package_name_mapping.get(arn, arn))
        before = dict(getattr(package, "customer_metadata_properties", None) or {})
        description = getattr(package, "approval_description", None)
        status = getattr(package, "model_approval_status", None)
        result = original(self, *args, **kwargs)
        if call.get("model_approval_status") is None:
            package.model_approval_status = status
        merged = {**before, **(call.get("customer_metadata_properties") or {})}
        for key in call.get("customer_metadata_properties_to_remove") or []:
            merged.pop(key, None)
        package.customer_metadata_properties = merged or None
        if call.get("approval_description") is None:
            package.approval_description = description
        return result

    return update_model_package


def install(state: Any) -> None:
    from moto.sagemaker.models import SageMakerModelBackend

    for method in ("create_model_package", "update_model_package"):
        original = _patching.original(SageMakerModelBackend, method)
        if method == "update_model_package":
            original = _keep_unchanged_fields(original)

        def wrapper(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            arn = _original(self, *args, **kwargs)
            _emit(self, arn)
            return arn

        _patching.replace(SageMakerModelBackend, method, wrapper)
