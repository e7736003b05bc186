"""The dead-letter redrive against moto's SQS: each event goes back to its function; only handled ones leave
the queue. (The whole path - a failing StartRun, its dead letter, the redrive starting the run - is in
tests/e2e/test_trigger.py.)"""

from __future__ import annotations

import io
import json
from typing import Any

from mlops_common.pipeline import redrive
from tests.conftest import load_function_module

from .conftest import Stack, load_event

app = load_function_module("redrive")
TARGETS = {redrive.S3_SOURCE: "start-run", redrive.SAGEMAKER_SOURCE: "approval-listener"}


class RecordingLambda:
    """Stands in for the Lambda API: records each synchronous invoke; `failing` functions report an error."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.failing = failing or set()

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        self.calls.append((FunctionName, json.loads(Payload)))
        if FunctionName in self.failing:
            body = {"errorType": "ClientError", "errorMessage": "still throttled"}
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}
        return {"Payload": io.BytesIO(json.dumps({"results": [{"outcome": "started"}]}).encode())}


def dead_letter_queue(stack: Stack, *bodies: str) -> str:
    url = stack.sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    for body in bodies:
        stack.sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"ErrorMessage": {"DataType": "String", "StringValue": "throttled"}},
        )
    return url


def remaining(stack: Stack, url: str) -> list[str]:
    messages = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def test_each_event_goes_back_to_its_function_and_leaves_the_queue(stack):
    upload = json.dumps(load_event("start_run_marker.json"))
    approval = json.dumps(load_event("approval_listener_approved.json"))
    url = dead_letter_queue(stack, upload, approval)
    functions = RecordingLambda()

    result = redrive.redrive(stack.sqs, functions, url, TARGETS).as_dict()

    assert result["replayed"] == 2 and result["failed"] == [] and result["unknown"] == []
    assert sorted(name for name, _ in functions.calls) == ["approval-listener", "start-run"]
    assert ("start-run", json.loads(upload)) in functions.calls
    assert result["results"][0]["deadLetterReason"] == {"ErrorMessage": "throttled"}
    assert remaining(stack, url) == []


def test_an_event_failing_again_stays_in_the_queue_with_why(stack):
    upload = json.dumps(load_event("start_run_marker.json"))
    url = dead_letter_queue(stack, upload)

    result = redrive.redrive(stack.sqs, RecordingLambda(failing={"start-run"}), url, TARGETS).as_dict()

    assert result["replayed"] == 0
    [failed] = result["failed"]
    assert failed["function"] == "start-run" and "still throttled" in failed["error"]
    assert remaining(stack, url) == [upload], "visible again at once for the next redrive"


def test_a_message_no_function_handles_is_left_for_a_person(stack):
    url = dead_letter_queue(stack, json.dumps({"source": "aws.ec2", "detail": {}}), "not json")
    functions = RecordingLambda()

    result = redrive.redrive(stack.sqs, functions, url, TARGETS).as_dict()

    assert len(result["unknown"]) == 2 and functions.calls == []
    assert sorted(remaining(stack, url)) == sorted(
        [json.dumps({"source": "aws.ec2", "detail": {}}), "not json"]
    )


def test_an_s3_notification_record_goes_to_start_run(stack):
    url = dead_letter_queue(stack, json.dumps(load_event("start_run_s3_notification.json")))
    functions = RecordingLambda()
    redrive.redrive(stack.sqs, functions, url, TARGETS)
    assert [name for name, _ in functions.calls] == ["start-run"]


def test_the_handler_reads_its_queue_and_functions_from_the_environment(stack, monkeypatch, lambda_context):
    url = dead_letter_queue(stack)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", url)
    monkeypatch.setenv("START_RUN_FUNCTION", "start-run")
    monkeypatch.setenv("APPROVAL_LISTENER_FUNCTION", "approval-listener")
    assert app.lambda_handler(load_event("redrive.json"), lambda_context)["replayed"] == 0
