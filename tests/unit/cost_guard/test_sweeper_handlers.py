"""The three Lambda handlers end to end on moto: sample events from events/, SNS summary, EMF metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cost_guard_fakes import BUCKET, REGION, Aws

from mlops_common.aws import client
from mlops_common.cost_guard.endpoints import RestoreError
from mlops_common.cost_guard.settings import CostGuardConfigError
from tests.conftest import load_function_module

EVENTS = Path(__file__).resolve().parents[3] / "events"


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def topic(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The notification topic with a queue subscribed, so tests can read what people would receive."""
    client.cache_clear()  # the layer caches clients per process; each test has its own moto state
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="mlops-notifications")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=attributes["QueueArn"])
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic_arn)
    monkeypatch.setenv("STACK_NAME", "mlops-test")
    monkeypatch.setenv("RESTORE_BUCKET", BUCKET)
    monkeypatch.setenv("DRY_RUN", "false")

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    yield received
    client.cache_clear()


def test_notebook_handler_stops_idle_notebooks_and_notifies(aws: Aws, topic, lambda_context, capsys) -> None:
    aws.notebook("forgotten", started=timedelta(hours=13))  # no heartbeat: max-uptime (12 h) applies
    aws.notebook("recent", started=timedelta(hours=1))
    handler = load_function_module("notebook_sweeper").lambda_handler

    report = handler(event("cost_guard_notebook_sweep.json"), lambda_context)

    assert report["counts"] == {"kept": 1, "stopped": 1}
    assert report["notified"] is True
    assert aws.notebook_status("forgotten") == "Stopped"
    (message,) = topic()
    assert message["Subject"].startswith("mlops-test cost guard: 1 notebooks stopped")
    assert json.loads(message["Message"])["acted_on"][0]["name"] == "forgotten"
    assert '"EstimatedHourlySavingUSD"' in capsys.readouterr().out  # Powertools EMF on stdout


def test_nothing_to_do_sends_no_notification(aws: Aws, topic, lambda_context) -> None:
    aws.notebook("recent", started=timedelta(hours=1))
    handler = load_function_module("notebook_sweeper").lambda_handler

    report = handler(event("cost_guard_notebook_sweep.json"), lambda_context)

    assert report["notified"] is False
    assert topic() == []


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_a_bad_setting_fails_with_its_name(aws: Aws, topic, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("NOTEBOOK_FALLBACK_POLICY", "sometimes")
    handler = load_function_module("notebook_sweeper").lambda_handler

    with pytest.raises(CostGuardConfigError, match="NOTEBOOK_FALLBACK_POLICY must be one of"):
        handler(event("cost_guard_notebook_sweep.json"), lambda_context)


def test_endpoint_handler_deletes_and_restore_handler_brings_it_back(aws: Aws, topic, lambda_context) -> None:
    aws.endpoint("churn-model", age=timedelta(days=2))
    sweep = load_function_module("endpoint_sweeper").lambda_handler
    restore = load_function_module("restore_endpoint").lambda_handler

    report = sweep(event("cost_guard_endpoint_sweep.json"), lambda_context)

    assert report["counts"] == {"deleted": 1}
    assert aws.endpoint_names() == set()
    (message,) = topic()
    assert "1 endpoints deleted" in message["Subject"]

    result = restore(event("cost_guard_restore_endpoint.json"), lambda_context)

    assert result["status"] == "restoring"
    assert aws.endpoint_names() == {"churn-model"}


def test_restore_handler_says_what_to_send(aws: Aws, topic, lambda_context) -> None:
    restore = load_function_module("restore_endpoint").lambda_handler

    with pytest.raises(RestoreError, match=re.escape('invoke with {"endpoint_name"')):
        restore({"name": "x"}, lambda_context)


def test_a_failed_notification_does_not_fail_the_sweep(aws: Aws, topic, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", f"arn:aws:sns:{REGION}:123456789012:deleted-topic")
    aws.notebook("forgotten", started=timedelta(hours=13))
    handler = load_function_module("notebook_sweeper").lambda_handler

    report = handler(event("cost_guard_notebook_sweep.json"), lambda_context)

    assert report["counts"] == {"stopped": 1}
    assert report["notified"] is False
