"""The SageMaker requests seam: every SageMaker request is held to the service model's constraints, as AWS
holds it; tags replace values like AWS's. Each behaviour is shown against the seam and, as a gap, against
plain moto."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from offline.seams import sagemaker_requests
from tests.unit.offline.conftest import ROLE, aws

PROCESSING = {
    "ProcessingJobName": "limits",
    "RoleArn": ROLE,
    "AppSpecification": {"ImageUri": "img"},
    "ProcessingResources": {
        "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10}
    },
}


def rejected(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return raised.value.response["Error"]["Message"]


def test_a_tag_value_with_a_parenthesis_is_rejected_as_aws_does(offline_state: Any) -> None:
    message = rejected(
        aws("sagemaker").create_model_package_group,
        ModelPackageGroupName="sales",
        Tags=[{"Key": "mlops:dataset", "Value": "sales(2024)"}],
    )
    assert message == (
        "1 validation error detected: Value 'sales(2024)' at 'tags.1.member.value' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)"
    )
    # Letters of any script, spaces and the allowed punctuation pass (the pattern's \p{L} classes).
    aws("sagemaker").create_model_package_group(
        ModelPackageGroupName="ventes", Tags=[{"Key": "dataset", "Value": "ventes été 2024/Q1 @ x=1+2"}]
    )


def test_a_300_character_metadata_value_is_rejected_as_aws_does(offline_state: Any) -> None:
    sagemaker = aws("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="meta")
    message = rejected(
        sagemaker.create_model_package,
        ModelPackageGroupName="meta",
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"cause": "x" * 300},
    )
    assert (
        "at 'customerMetadataProperties.cause.value' failed to satisfy constraint: Member must have "
        "length less than or equal to 256" in message
    )


def test_numbers_names_and_enums_are_checked(offline_state: Any) -> None:
    sagemaker = aws("sagemaker")
    message = rejected(
        sagemaker.create_processing_job,
        **{
            **PROCESSING,
            "ProcessingJobName": "n" * 64,
            "StoppingCondition": {"MaxRuntimeInSeconds": 777_601},
        },
    )
    assert message.startswith("3 validation errors detected: ")  # length, pattern, runtime
    assert (
        "at 'processingJobName' failed to satisfy constraint: Member must have length less than or "
        "equal to 63" in message
    )
    assert (
        "Value '777601' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: Member "
        "must have value less than or equal to 777600" in message
    )
    assert "satisfy enum value set" in rejected(sagemaker.list_model_packages, SortOrder="Sideways")


def test_tags_replace_values_and_package_versions_take_tags(offline_state: Any) -> None:
    sagemaker = aws("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="tagged")
    arn = sagemaker.create_model_package(ModelPackageGroupName="tagged", ModelApprovalStatus="Approved")[
        "ModelPackageArn"
    ]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "outcome", "Value": "failed"}])
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "outcome", "Value": "deployed"}])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "outcome", "Value": "deployed"}]


def test_every_pattern_of_the_service_model_compiles() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    for name in model.shape_names:
        pattern = model.shape_for(name).metadata.get("pattern")
        if pattern:
            sagemaker_requests._compiled(pattern)
    assert set() == sagemaker_requests.UNCHECKED_PATTERNS


def test_gap_plain_moto_accepts_what_sagemaker_rejects(plain_moto: None) -> None:
    sagemaker = aws("sagemaker")
    sagemaker.create_model_package_group(
        ModelPackageGroupName="sales", Tags=[{"Key": "mlops:dataset", "Value": "sales(2024)"}]
    )
    arn = sagemaker.create_model_package(
        ModelPackageGroupName="sales",
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"k": "x" * 300},
    )["ModelPackageArn"]
    endpoint_tags = sagemaker.list_tags(
        ResourceArn=sagemaker.describe_model_package_group(ModelPackageGroupName="sales")[
            "ModelPackageGroupArn"
        ]
    )["Tags"]
    assert endpoint_tags == [{"Key": "mlops:dataset", "Value": "sales(2024)"}]
    with pytest.raises(ValueError):  # package versions cannot be tagged in plain moto
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "k", "Value": "v"}])
