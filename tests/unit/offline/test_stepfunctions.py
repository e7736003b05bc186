"""The Step Functions and CloudFormation seams: stack-created state machines run (with substitutions and
nested .sync:2), Wait states and retries are fast, aws-sdk error names look like AWS's."""

from __future__ import annotations

import json
import time
from typing import Any

from offline.seams import cloudformation
from offline.seams.state import OfflineState
from tests.unit.offline.conftest import ROLE, aws, create_function, ensure_role, make_zip


def _run(machine: str, name: str, payload: Any = None, timeout: float = 20) -> dict[str, Any]:
    sfn = aws("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload or {}))[
        "executionArn"
    ]
    return _run_to_end(arn, timeout)


CHILD = {
    "StartAt": "Hello",
    "States": {"Hello": {"Type": "Pass", "Result": {"from": "${Greeting}"}, "End": True}},
}
PARENT = {
    "StartAt": "Nap",
    "States": {
        "Nap": {"Type": "Wait", "Seconds": 3600, "Next": "Child"},
        "Child": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": "${ChildArn}", "Input": {}},
            "OutputPath": "$.Output",
            "End": True,
        },
    },
}


def _stack(template: dict[str, Any]) -> dict[str, str]:
    ensure_role()
    cfn = aws("cloudformation")
    cfn.create_stack(StackName="s", TemplateBody=json.dumps(template))
    stack = cfn.describe_stacks(StackName="s")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def test_stack_state_machines_run_with_substitutions_nested_sync_and_fast_wait(
    offline_state: OfflineState,
) -> None:
    template = {
        "Resources": {
            "Child": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": ROLE,
                    "DefinitionString": json.dumps(CHILD),
                    "DefinitionSubstitutions": {"Greeting": "hi"},
                },
            },
            "Parent": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": ROLE,
                    "Definition": PARENT,
                    "DefinitionSubstitutions": {"ChildArn": {"Ref": "Child"}},
                },
            },
        },
        "Outputs": {"Parent": {"Value": {"Ref": "Parent"}}},
    }
    parent = _stack(template)["Parent"]

    started = time.monotonic()
    described = _run(parent, "nested")

    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"from": "hi"}
    assert time.monotonic() - started < 10  # the one-hour Wait took at most max_wait_seconds


def test_stack_bucket_notification_and_function_layers_are_kept(offline_state: OfflineState) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="layer.zip", Body=make_zip({"python/helper.py": "X = 'layer'\n"}))
    s3.put_object(
        Bucket="artifacts",
        Key="fn.zip",
        Body=make_zip({"app.py": "import helper\ndef handler(e, c):\n    return helper.X\n"}),
    )
    template = {
        "Resources": {
            "Input": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": "cfn-input",
                    "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
                },
            },
            "Layer": {
                "Type": "AWS::Lambda::LayerVersion",
                "Properties": {"Content": {"S3Bucket": "artifacts", "S3Key": "layer.zip"}},
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "cfn-fn",
                    "Runtime": "python3.12",
                    "Handler": "app.handler",
                    "Role": ROLE,
                    "Code": {"S3Bucket": "artifacts", "S3Key": "fn.zip"},
                    "Layers": [{"Ref": "Layer"}],
                },
            },
        }
    }
    _stack(template)

    sqs = aws("sqs")
    queue = sqs.create_queue(QueueName="created")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws("events").put_rule(Name="created", EventPattern=json.dumps({"source": ["aws.s3"]}))
    aws("events").put_targets(Rule="created", Targets=[{"Id": "q", "Arn": queue_arn}])
    s3.put_object(Bucket="cfn-input", Key="training/x/data.csv", Body=b"1")
    message = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert message["detail"]["object"]["key"] == "training/x/data.csv"
    response = aws("lambda").invoke(FunctionName="cfn-fn", Payload=b"{}")
    assert json.loads(response["Payload"].read()) == "layer"


def test_retry_intervals_are_capped_and_aws_sdk_errors_are_named_like_aws(
    offline_state: OfflineState,
) -> None:
    definition = {
        "StartAt": "Describe",
        "States": {
            "Describe": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob",
                "Parameters": {"TrainingJobName": "does-not-exist"},
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 60, "MaxAttempts": 2}],
                "End": True,
            }
        },
    }
    machine = aws("stepfunctions").create_state_machine(
        name="sdk", definition=json.dumps(definition), roleArn=ROLE
    )

    started = time.monotonic()
    described = _run(machine["stateMachineArn"], "sdk")

    assert described["status"] == "FAILED"
    assert described["error"] == "SageMaker.SageMakerException"  # an undeclared error: ValidationException
    assert time.monotonic() - started < 60  # capped: uncapped, the two retry intervals alone take 180 s


def test_fail_api_hits_interpreter_and_handlers_but_not_test_clients(offline_state: OfflineState) -> None:
    aws("s3").create_bucket(Bucket="faulted")
    arn = create_function(
        "writer",
        {
            "app.py": "import boto3\n"
            "def handler(e, c):\n"
            "    boto3.client('s3').put_object(Bucket='faulted', Key='k', Body=b'')\n"
        },
    )
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn},
                "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "MaxAttempts": 1}],
                "End": True,
            }
        },
    }
    machine = aws("stepfunctions").create_state_machine(
        name="f", definition=json.dumps(definition), roleArn=ROLE
    )
    faults = offline_state.faults
    faults.fail_api("s3", "PutObject", "SlowDown", times=1)
    faults.fail_api("lambda", "Invoke", "TooManyRequestsException", times=1)

    aws("s3").put_object(Bucket="faulted", Key="test-client", Body=b"")  # not affected
    described = _run(machine["stateMachineArn"], "faulted")

    # Invoke failed once (retried), then the handler's PutObject failed: botocore raises ClientError (no
    # modeled class for SlowDown), which Lambda reports as errorType ClientError
    assert described["status"] == "FAILED"
    assert described["error"] == "ClientError"
    assert "SlowDown" in described["cause"]
    assert [(f.operation, f.error_code) for f in faults.fired] == [
        ("Invoke", "TooManyRequestsException"),
        ("PutObject", "SlowDown"),
    ]
    assert _run(machine["stateMachineArn"], "healthy")["status"] == "SUCCEEDED"


def test_substitute_leaves_unknown_placeholders() -> None:
    text = '{"a": "${Known}", "b": "${Unknown}", "c": ${Number}}'
    assert (
        cloudformation.substitute(text, {"Known": "x", "Number": 3})
        == '{"a": "x", "b": "${Unknown}", "c": 3}'
    )


def test_gap_moto_cloudformation_state_machine_is_invisible_and_unsubstituted(plain_moto: None) -> None:
    from moto.stepfunctions.models import StateMachine

    source = StateMachine.create_from_cloudformation_json.__func__.__code__  # type: ignore[attr-defined]
    assert "stepfunctions_backends" in source.co_names
    assert "DefinitionSubstitutions" not in source.co_consts


def _wait_ended(arn: str) -> float:
    history = aws("stepfunctions").get_execution_history(executionArn=arn)["events"]
    [exited] = [e for e in history if e["type"] == "WaitStateExited"]
    return float(exited["timestamp"].timestamp())


def test_a_shortened_wait_lasts_while_an_endpoint_settles_but_no_longer_than_its_real_length(
    offline_state: OfflineState,
) -> None:
    ensure_role()
    sfn = aws("stepfunctions")

    def machine(seconds: int) -> str:
        definition = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": seconds, "End": True}}}
        return sfn.create_state_machine(
            name=f"nap-{seconds}", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]

    # Work that takes minutes on AWS (an endpoint starting) ends while a 60 s Wait is shortened: the Wait
    # ends after it, not at the cap (0.01 s here).
    offline_state.settling.begin()
    started = sfn.start_execution(stateMachineArn=machine(60), name="outlasts")["executionArn"]
    time.sleep(0.5)
    settled_at = time.time()
    offline_state.settling.end()
    assert _run_to_end(started)["status"] == "SUCCEEDED"
    assert _wait_ended(started) >= settled_at - 0.05  # history timestamps are in milliseconds

    # Work still running after the Wait's real length (1 s) does not hold it longer.
    offline_state.settling.begin()
    try:
        bounded = _run(machine(1), "bounded", timeout=20)
        assert bounded["status"] == "SUCCEEDED"
        assert offline_state.settling.running == 1
    finally:
        offline_state.settling.end()


def test_the_quiet_time_wait_lasts_its_real_length_and_other_waits_are_shortened(
    offline_state: OfflineState,
) -> None:
    ensure_role()
    sfn = aws("stepfunctions")
    states = {
        "Nap": {"Type": "Wait", "Seconds": 2, "Next": "WaitForQuiet"},
        "WaitForQuiet": {"Type": "Wait", "Seconds": 2, "End": True},
    }
    arn = sfn.create_state_machine(
        name="quiet", definition=json.dumps({"StartAt": "Nap", "States": states}), roleArn=ROLE
    )["stateMachineArn"]

    run = _run(arn, "quiet-once")

    history = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
    entered = [e["timestamp"] for e in history if e["type"] == "WaitStateEntered"]
    exited = [e["timestamp"] for e in history if e["type"] == "WaitStateExited"]
    nap, quiet = ((out - into).total_seconds() for into, out in zip(entered, exited, strict=True))
    assert nap < 1.0, "an ordinary Wait is shortened to the cap"
    assert quiet >= 1.95, "the batch waiter's quiet time is waited in full"


def _run_to_end(arn: str, timeout: float = 20) -> dict[str, Any]:
    sfn = aws("stepfunctions")
    deadline = time.monotonic() + timeout
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, described
        time.sleep(0.02)
    return described
