"""The EventBridge seam: rules reach Lambda (async) and Step Functions targets; schedule rules fire on
demand."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from offline.seams import event_targets
from offline.seams.state import OfflineState
from tests.unit.offline.conftest import ROLE, aws, create_function

RECORDER = """
import json, boto3
def handler(event, context):
    boto3.client("s3").put_object(Bucket="seen", Key=context.aws_request_id, Body=json.dumps(event).encode())
    return "ok"
"""


def _seen() -> list[Any]:
    s3 = aws("s3")
    return [
        json.loads(s3.get_object(Bucket="seen", Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket="seen").get("Contents", [])
    ]


def _machine() -> str:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    return aws("stepfunctions").create_state_machine(
        name="sm", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]


@pytest.fixture
def recorder(offline_state: OfflineState) -> str:
    aws("s3").create_bucket(Bucket="seen")
    return create_function("recorder", {"app.py": RECORDER})


def test_put_events_reach_lambda_states_and_sqs_targets(recorder: str, offline_state: OfflineState) -> None:
    events, sqs = aws("events"), aws("sqs")
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    machine = _machine()
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["app.test"]}))
    events.put_targets(
        Rule="r",
        Targets=[
            {
                "Id": "fn",
                "Arn": recorder,
                "InputTransformer": {
                    "InputPathsMap": {"k": "$.detail.key"},
                    "InputTemplate": '{"key": "<k>"}',
                },
            },
            {"Id": "sm", "Arn": machine, "InputPath": "$.detail"},
            {"Id": "q", "Arn": queue_arn},
        ],
    )

    events.put_events(
        Entries=[{"Source": "app.test", "DetailType": "t", "Detail": json.dumps({"key": "a/b.csv"})}]
    )
    invocations = offline_state.registry.wait_for_async_invocations(timeout=10)

    assert [i.error for i in invocations] == [None, None]
    assert _seen() == [{"key": "a/b.csv"}]
    executions = aws("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    assert len(executions) == 1
    started = aws("stepfunctions").describe_execution(executionArn=executions[0]["executionArn"])
    assert json.loads(started["input"]) == {"key": "a/b.csv"}
    assert sqs.receive_message(QueueUrl=queue).get("Messages"), "moto's own targets must still be delivered"


def test_s3_object_created_reaches_lambda_through_eventbridge(
    recorder: str, offline_state: OfflineState
) -> None:
    s3, events = aws("s3"), aws("events")
    s3.create_bucket(Bucket="input")
    s3.put_bucket_notification_configuration(
        Bucket="input", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["input"]}},
    }
    events.put_rule(Name="s3r", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="s3r", Targets=[{"Id": "fn", "Arn": recorder}])

    s3.put_object(Bucket="input", Key="training/iris/data.csv", Body=b"x")
    offline_state.registry.wait_for_async_invocations(timeout=10)

    (seen,) = _seen()
    assert seen["detail"]["object"]["key"] == "training/iris/data.csv"
    assert seen["detail-type"] == "Object Created"
    assert isinstance(seen["time"], str) and seen["time"].endswith("Z")


def test_fire_rule_sends_a_scheduled_event(recorder: str, offline_state: OfflineState) -> None:
    events = aws("events")
    rule_arn = events.put_rule(Name="every-hour", ScheduleExpression="rate(1 hour)")["RuleArn"]
    events.put_targets(Rule="every-hour", Targets=[{"Id": "fn", "Arn": recorder}])
    # a schedule rule matches no event (moto's empty pattern would match all of them)
    events.put_events(Entries=[{"Source": "app.other", "DetailType": "t", "Detail": "{}"}])
    assert offline_state.registry.async_invocations == []

    invocations = event_targets.fire_rule("every-hour")
    for invocation in invocations:
        invocation.done.wait(10)

    (seen,) = _seen()
    assert seen["detail-type"] == "Scheduled Event"
    assert seen["resources"] == [rule_arn]


def test_failing_target_is_retried_like_async_lambda(offline_state: OfflineState) -> None:
    aws("s3").create_bucket(Bucket="seen")
    code = (
        "import boto3, uuid\n"
        "def handler(event, context):\n"
        "    boto3.client('s3').put_object(Bucket='seen', Key=str(uuid.uuid4()), Body=b'1')\n"
        "    raise RuntimeError('boom')\n"
    )
    arn = create_function("flaky", {"app.py": code})
    aws("events").put_rule(Name="r2", EventPattern=json.dumps({"source": ["app.flaky"]}))
    aws("events").put_targets(Rule="r2", Targets=[{"Id": "fn", "Arn": arn}])

    aws("events").put_events(Entries=[{"Source": "app.flaky", "DetailType": "t", "Detail": "{}"}])
    (invocation,) = offline_state.registry.wait_for_async_invocations(timeout=10)

    assert "boom" in (invocation.error or "")
    assert len(aws("s3").list_objects_v2(Bucket="seen")["Contents"]) == 3  # 1 try + 2 retries


def _queue(name: str) -> tuple[str, str]:
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _dead_letters(url: str) -> list[dict[str, Any]]:
    return (
        aws("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


def test_an_event_still_failing_after_the_retries_goes_to_the_functions_dead_letter_queue(
    offline_state: OfflineState,
) -> None:
    url, queue_arn = _queue("dlq")
    code = "def handler(event, context):\n    raise RuntimeError('cannot start: throttled')\n"
    arn = create_function("failing", {"app.py": code}, DeadLetterConfig={"TargetArn": queue_arn})
    aws("events").put_rule(Name="r3", EventPattern=json.dumps({"source": ["app.failing"]}))
    aws("events").put_targets(Rule="r3", Targets=[{"Id": "fn", "Arn": arn}])

    aws("events").put_events(
        Entries=[{"Source": "app.failing", "DetailType": "t", "Detail": json.dumps({"k": "v"})}]
    )
    (invocation,) = offline_state.registry.wait_for_async_invocations(timeout=10)

    assert invocation.dead_letter_queue == queue_arn
    (message,) = _dead_letters(url)
    body = json.loads(message["Body"])
    assert (body["source"], body["detail"]) == ("app.failing", {"k": "v"}), (
        "the event itself, as Lambda sends it"
    )
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ErrorMessage"] == "cannot start: throttled" and attributes["RequestID"]


def test_a_succeeding_or_dlq_less_function_leaves_no_dead_letter(
    recorder: str, offline_state: OfflineState
) -> None:
    url, queue_arn = _queue("dlq-unused")
    arn = create_function("fine", {"app.py": RECORDER}, DeadLetterConfig={"TargetArn": queue_arn})
    aws("events").put_rule(Name="r4", EventPattern=json.dumps({"source": ["app.fine"]}))
    aws("events").put_targets(Rule="r4", Targets=[{"Id": "fn", "Arn": arn}])
    aws("events").put_events(Entries=[{"Source": "app.fine", "DetailType": "t", "Detail": "{}"}])
    (invocation,) = offline_state.registry.wait_for_async_invocations(timeout=10)
    assert invocation.error is None and invocation.dead_letter_queue is None
    assert _dead_letters(url) == []


def test_an_undeliverable_event_goes_to_the_targets_dead_letter_queue(offline_state: OfflineState) -> None:
    url, queue_arn = _queue("target-dlq")
    missing = "arn:aws:lambda:us-east-1:123456789012:function:deleted"
    aws("events").put_rule(Name="r5", EventPattern=json.dumps({"source": ["app.gone"]}))
    aws("events").put_targets(
        Rule="r5", Targets=[{"Id": "fn", "Arn": missing, "DeadLetterConfig": {"Arn": queue_arn}}]
    )
    aws("events").put_events(Entries=[{"Source": "app.gone", "DetailType": "t", "Detail": "{}"}])
    (invocation,) = offline_state.registry.wait_for_async_invocations(timeout=10)

    assert invocation.dead_letter_queue == queue_arn
    (message,) = _dead_letters(url)
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["TARGET_ARN"] == missing and attributes["RULE_ARN"].endswith("rule/r5")
    assert json.loads(message["Body"])["source"] == "app.gone"


def test_gap_moto_keeps_no_dead_letter_config(plain_moto: None) -> None:
    _, queue_arn = _queue("plain-dlq")
    create_function("plain", {"app.py": RECORDER}, DeadLetterConfig={"TargetArn": queue_arn})
    from moto.awslambda.utils import get_backend

    function = get_backend("123456789012", "us-east-1").get_function("plain")
    assert getattr(function, "dead_letter_config", None) is None


def test_gap_moto_rejects_lambda_targets(plain_moto: None) -> None:
    from moto.events.models import Rule

    rule = Rule("r", "123456789012", "us-east-1", None, None, "rate(1 hour)", None, "default", None)
    rule.put_targets([{"Id": "fn", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}])
    with pytest.raises(NotImplementedError):
        rule.send_to_targets({"source": "x", "detail": {}, "time": time.time()}, transform_input=False)


def test_model_package_state_changes_reach_rules(offline_state: OfflineState) -> None:
    sqs, sm = aws("sqs"), aws("sagemaker")
    queue = sqs.create_queue(QueueName="packages")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelApprovalStatus": ["Approved"]},
    }
    aws("events").put_rule(Name="approved", EventPattern=json.dumps(pattern))
    aws("events").put_targets(Rule="approved", Targets=[{"Id": "q", "Arn": queue_arn}])
    sm.create_model_package_group(ModelPackageGroupName="g")
    arn = sm.create_model_package(
        ModelPackageGroupName="g",
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://m/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)  # creation (pending) does not match

    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")

    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    event = json.loads(message["Body"])
    assert event["resources"] == [arn]
    assert event["detail"]["ModelPackageArn"] == arn
    assert event["detail"]["ModelPackageGroupName"] == "g"
    assert isinstance(event["detail"]["CreationTime"], int)


def test_update_model_package_keeps_metadata_it_does_not_set(offline_state: OfflineState) -> None:
    sm = aws("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="keep")
    arn = sm.create_model_package(
        ModelPackageGroupName="keep",
        ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"approval_mode": "manual", "run": "r1"},
        InferenceSpecification={
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://m/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]

    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sm.update_model_package(
        ModelPackageArn=arn, CustomerMetadataProperties={"run": "r2"}, CustomerMetadataPropertiesToRemove=[]
    )

    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["CustomerMetadataProperties"] == {"approval_mode": "manual", "run": "r2"}
