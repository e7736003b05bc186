"""One embedded AWS for all e2e tests with the real `sam build` output deployed (offline.embedded)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offline.embedded import EmbeddedAws
from offline.stack import DEFAULT_BUILD_DIR

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


# Package scope: one deploy for all of tests/e2e, torn down (seams uninstalled, moto stopped) before the
# other test folders run, so they see plain moto.
@pytest.fixture(scope="package")
def aws() -> Iterator[EmbeddedAws]:
    if not (DEFAULT_BUILD_DIR / "template.yaml").is_file():
        pytest.fail("no .aws-sam/build/template.yaml: run `make build` (sam build) before the e2e tests")
    with EmbeddedAws() as embedded:
        yield embedded


def template_resources(aws: EmbeddedAws, kind: str) -> dict[str, str]:
    """Logical id -> physical id of the deployed resources of one CloudFormation type."""
    assert aws.deployment
    return {
        logical_id: aws.deployment.resources[logical_id]
        for logical_id, resource in aws.deployment.template["Resources"].items()
        if resource["Type"] == kind and logical_id in aws.deployment.resources
    }


def subscribe_queue(aws: EmbeddedAws, topic_arn: str, name: str) -> str:
    """A new SQS queue subscribed (raw delivery off: SNS envelopes) to the topic; returns its URL."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def receive_notifications(aws: EmbeddedAws, queue_url: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every SNS notification (Subject, Message) delivered to the queue within `timeout` seconds."""
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if found and not messages:
            return found
        time.sleep(0.1)
    return found


def waiters_of(aws: EmbeddedAws, dataset: str, since: float, timeout: float = 180.0) -> list[dict[str, Any]]:
    """Wait until the uploads' events are handled and every batch waiter of the dataset started since `since`
    has ended (its run, if any, then exists); return their describe_execution answers, oldest first."""
    from offline.embedded import TERMINAL_EXECUTION_STATES, list_executions

    aws.state.registry.wait_for_async_invocations(timeout=timeout)
    sfn, machine = aws.client("stepfunctions"), aws.outputs["BatchWaiterStateMachineArn"]
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in list_executions(sfn, machine, since) if e["name"].startswith(f"{dataset}-")]
        if all(e["status"] in TERMINAL_EXECUTION_STATES for e in found):
            return [sfn.describe_execution(executionArn=e["executionArn"]) for e in found]
        assert time.monotonic() < deadline, f"{dataset}: batch waiters still running: {found}"
        time.sleep(0.1)
