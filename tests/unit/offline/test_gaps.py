"""The gaps the Step Functions (.sync), job runner and sagemaker_events seams fill, shown in plain moto: when
one of these tests fails, moto changed underneath the seam, and the seam (and its README line) needs a
look."""

from __future__ import annotations

import json
import time

import pytest

from tests.unit.offline.conftest import ROLE, aws

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def _training_job(name: str) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bkt/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


def test_gap_moto_jobs_complete_at_create_and_cannot_be_stopped(plain_moto: None) -> None:
    sm = aws("sagemaker")
    sm.create_training_job(**_training_job("gap-job"))

    assert sm.describe_training_job(TrainingJobName="gap-job")["TrainingJobStatus"] == "Completed"
    # In-process, mock_aws raises moto's NotImplementedError straight through the client call.
    with pytest.raises(NotImplementedError, match="stop_training_job"):
        sm.stop_training_job(TrainingJobName="gap-job")


def test_gap_moto_has_no_sagemaker_sync_integration(plain_moto: None) -> None:
    sfn = aws("stepfunctions")
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
                "Parameters": _training_job("gap-sync"),
                "End": True,
            }
        },
    }
    arn = sfn.create_state_machine(name="gap-sync", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=arn, name="gap-sync")["executionArn"]
    deadline = time.monotonic() + 10
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert described["status"] == "FAILED"
    assert "Unsupported sync callback procedure" in described.get("cause", "")


def test_gap_moto_sends_no_model_package_state_change_event(plain_moto: None) -> None:
    sqs, events, sm = aws("sqs"), aws("events"), aws("sagemaker")
    url = sqs.create_queue(QueueName="gap-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="gap-events", EventPattern=json.dumps({"source": ["aws.sagemaker"]}))
    events.put_targets(Rule="gap-events", Targets=[{"Id": "queue", "Arn": queue_arn}])
    sm.create_model_package_group(ModelPackageGroupName="gap-group")

    arn = sm.create_model_package(
        ModelPackageGroupName="gap-group",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")

    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") is None
