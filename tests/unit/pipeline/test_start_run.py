"""start_run against moto: real S3 objects, a real state machine; one execution per dataset version."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_function_module

from .conftest import ROLE_ARN, Stack, load_event

app = load_function_module("start_run")


@pytest.fixture
def machine(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = stack.sfn.create_state_machine(
        name="pipeline", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    monkeypatch.setenv("PIPELINE_STATE_MACHINE_ARN", arn)
    return arn


def object_created(stack: Stack, key: str, put: dict) -> dict:
    event = load_event("start_run_object_created.json")
    event["detail"]["bucket"]["name"] = stack.input_bucket
    event["detail"]["object"].update({"key": key, "version-id": put.get("VersionId"), "size": 12})
    return event


def executions(stack: Stack, machine: str) -> list[dict]:
    return stack.sfn.list_executions(stateMachineArn=machine)["executions"]


def test_a_csv_upload_starts_one_run_and_a_redelivery_starts_nothing(stack, machine, lambda_context):
    put = stack.put("training/iris/iris.csv", "label,a\n1,2\n")
    event = object_created(stack, "training/iris/iris.csv", put)

    first = app.lambda_handler(event, lambda_context)["results"][0]
    again = app.lambda_handler(event, lambda_context)["results"][0]

    assert first["outcome"] == "started" and again["outcome"] == "duplicate"
    [execution] = executions(stack, machine)
    assert execution["name"] == first["executionName"]
    run_input = json.loads(stack.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert run_input["runId"] == execution["name"]
    assert (run_input["dataset"], run_input["trigger"], run_input["key"]) == (
        "iris",
        "single-file",
        "training/iris/iris.csv",
    )
    assert run_input["versionId"] == put["VersionId"]


def test_a_new_version_of_the_same_key_is_a_new_run(stack, machine, lambda_context):
    for body in ("label,a\n1,2\n", "label,a\n3,4\n"):
        put = stack.put("training/iris/iris.csv", body)
        app.lambda_handler(object_created(stack, "training/iris/iris.csv", put), lambda_context)
    assert len(executions(stack, machine)) == 2


def test_multi_file_upload_starts_one_run_at_the_marker(stack, machine, lambda_context):
    outcomes = []
    for key in ("training/shards/part-1/a.csv", "training/shards/part-2/b.csv", "training/shards/_READY"):
        put = stack.put(key, "label,a\n1,2\n" if not key.endswith("_READY") else "")
        outcomes.append(
            app.lambda_handler(object_created(stack, key, put), lambda_context)["results"][0]["outcome"]
        )
    assert outcomes == ["ignored", "ignored", "started"]
    [execution] = executions(stack, machine)
    run_input = json.loads(stack.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert run_input["trigger"] == "marker"


@pytest.mark.parametrize(
    "key", ["training/iris/pipeline.json", "training/iris/", "training/iris/readme.docx", "other/iris.csv"]
)
def test_ignored_objects_start_nothing_and_say_why(stack, machine, lambda_context, key):
    put = stack.put(key, "{}")
    result = app.lambda_handler(object_created(stack, key, put), lambda_context)["results"][0]
    assert result["outcome"] == "ignored" and result["reason"]
    assert executions(stack, machine) == []


def test_url_encoded_keys_with_spaces_unicode_and_plus_resolve_to_the_real_object(
    stack, machine, lambda_context
):
    real_key = "training/house prices/sales (été)+1.csv"
    put = stack.put(real_key, "label,a\n1,2\n")
    event = load_event("start_run_s3_notification.json")
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = stack.input_bucket
    record["object"].update(
        {"key": "training/house+prices/sales+%28%C3%A9t%C3%A9%29%2B1.csv", "versionId": put["VersionId"]}
    )

    result = app.lambda_handler(event, lambda_context)["results"][0]

    assert result["outcome"] == "started", result
    assert result["key"] == real_key and result["dataset"] == "house prices"
    stack.s3.head_object(Bucket=stack.input_bucket, Key=real_key)  # untouched


def test_an_eventbridge_key_with_a_literal_plus_is_not_decoded(stack, machine, lambda_context):
    put = stack.put("training/c++/data.csv", "label,a\n1,2\n")
    result = app.lambda_handler(object_created(stack, "training/c++/data.csv", put), lambda_context)[
        "results"
    ][0]
    assert (result["outcome"], result["dataset"]) == ("started", "c++")


def test_an_unrelated_event_is_logged_not_raised(stack, machine, lambda_context):
    result = app.lambda_handler({"source": "aws.ec2", "detail-type": "x", "detail": {}}, lambda_context)
    assert result["results"][0]["outcome"] == "ignored"
    assert executions(stack, machine) == []


def test_a_failed_start_is_logged_and_raised_for_the_retry(stack, machine, lambda_context, caplog):
    from botocore.stub import Stubber

    from mlops_common.aws import client

    put = stack.put("training/iris/iris.csv", "label,a\n1,2\n")
    sfn = client("stepfunctions")
    with Stubber(sfn) as stubbed:  # moto cannot throttle: the Stubber plays Step Functions here
        stubbed.add_client_error("describe_execution", "ExecutionDoesNotExist")
        stubbed.add_client_error("start_execution", "ThrottlingException", http_status_code=400)
        with pytest.raises(sfn.exceptions.ClientError, match="ThrottlingException"):
            app.lambda_handler(object_created(stack, "training/iris/iris.csv", put), lambda_context)
    assert "the event will be retried" in caplog.text
