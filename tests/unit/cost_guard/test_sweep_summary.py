"""The sweep summary: counts, savings, caps for the SNS message, and when people are notified."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
from moto import mock_aws

from mlops_common.cost_guard.summary import SweepSummary, notify

STARTED = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def test_counts_savings_and_the_listing_cap() -> None:
    summary = SweepSummary(kind="endpoints", dry_run=False, started_at=STARTED)
    for i in range(250):
        summary.add(f"ep-{i}", "deleted", "idle", 0.1)
    summary.add("unpriced", "deleted", "idle", None)
    summary.add("busy", "kept", "used")
    summary.add("a", "skipped", "status Creating, not InService")
    summary.add("b", "skipped", "status Creating, not InService")

    report = summary.to_dict()

    assert report["counts"] == {"deleted": 251, "kept": 1, "skipped": 2}
    assert report["estimated_hourly_saving_usd"] == 25.0
    assert report["unpriced"] == 1
    assert len(report["acted_on"]) == 200
    assert report["acted_on_not_listed"] == 51
    assert report["skipped_by_reason"] == {"status Creating, not InService": 2}
    assert len(json.dumps(report)) < 256 * 1024  # one SNS message


def test_notifies_only_when_something_was_or_would_be_done() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="t")["TopicArn"]
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

        quiet = SweepSummary(kind="notebooks", dry_run=False, started_at=STARTED)
        quiet.add("nb", "kept", "active")
        dry = SweepSummary(kind="notebooks", dry_run=True, started_at=STARTED)
        dry.add("nb", "would_stop", "idle", 0.05)

        assert notify(quiet, topic, "stack", sns=sns) is False
        assert notify(dry, topic, "stack", sns=sns) is True
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]

    (body,) = [json.loads(m["Body"]) for m in messages]
    assert body["Subject"] == "[dry run] stack cost guard: 0 notebooks stopped, 1 idle to review, ~$0.05/h"
