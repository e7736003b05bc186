"""When runs start, and what they read, on the deployed stack (real ASL: the batch waiter and the pipeline).

Uploads reach start_run through S3 -> EventBridge; the batch waiter's loop runs in moto's interpreter (Wait
states capped by the offline seam; the quiet time is the stack's DatasetQuietSeconds, 3 s offline). Runs use
manual approval, so they end at registration and deploy nothing. Each test has its own dataset.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from offline.embedded import EmbeddedAws, list_executions
from tests.e2e.conftest import waiters_of

SAMPLE = Path(__file__).resolve().parents[2] / "offline" / "sample_data" / "iris"
HEADER, *IRIS_ROWS = (SAMPLE / "iris.csv").read_text().splitlines()
CONFIG = {
    "target_column": "species",
    "approval_mode": "manual",
    "hyperparameters": {"n_estimators": 10},
}
RUN_TIMEOUT = 240.0


def csv(rows: list[str]) -> bytes:
    return "\n".join([HEADER, *rows]).encode() + b"\n"


def put(aws: EmbeddedAws, key: str, body: bytes | str) -> dict[str, Any]:
    return aws.client("s3").put_object(Bucket=aws.outputs["InputBucketName"], Key=key, Body=body)


def configure(aws: EmbeddedAws, dataset: str, **extra: Any) -> float:
    """pipeline.json first; returns a time just before it."""
    since = time.time() - 0.5
    put(aws, f"training/{dataset}/pipeline.json", json.dumps({**CONFIG, **extra}))
    return since


def runs_of(aws: EmbeddedAws, dataset: str, since: float) -> list[dict[str, Any]]:
    """The dataset's pipeline executions started since `since`, once its uploads' batch waiters have ended."""
    waiters_of(aws, dataset, since)
    executions = list_executions(aws.client("stepfunctions"), aws.outputs["PipelineStateMachineArn"], since)
    return [e for e in executions if e["name"].startswith(f"{dataset}-")]


def finished(aws: EmbeddedAws, run: dict[str, Any]) -> dict[str, Any]:
    [done] = [
        e
        for e in aws.wait_for_executions(aws.outputs["PipelineStateMachineArn"], 1, RUN_TIMEOUT)
        if e["executionArn"] == run["executionArn"]
    ]
    assert done["status"] == "SUCCEEDED", history_failures(aws, done)
    return done


def history_failures(aws: EmbeddedAws, execution: dict[str, Any]) -> str:
    events = aws.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])[
        "events"
    ]
    return json.dumps([e for e in events if "Failed" in e["type"]], default=str)[:3000]


def read_json(aws: EmbeddedAws, uri: str) -> Any:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def run_input(aws: EmbeddedAws, run: dict[str, Any]) -> dict[str, Any]:
    return json.loads(
        aws.client("stepfunctions").describe_execution(executionArn=run["executionArn"])["input"]
    )


def rows_processed(aws: EmbeddedAws, done: dict[str, Any]) -> int:
    """What the processing job read: the row counts its schema.json records."""
    run = json.loads(done["output"])["run"]
    schema = read_json(aws, run["paths"]["schema"] + "schema.json")
    return sum(schema["rows"].values()) + schema["invalid_rows_dropped"]


def test_forty_shards_and_a_marker_start_one_run(aws: EmbeddedAws) -> None:
    # A quiet time well above the marker's delay, however loaded the machine: only the marker starts this run.
    since = configure(aws, "shards40", dataset_quiet_seconds=6)
    for i in range(40):
        put(aws, f"training/shards40/part-{i:02d}.csv", csv(IRIS_ROWS[i * 3 : i * 3 + 3]))
    put(aws, "training/shards40/_READY", b"")

    runs = runs_of(aws, "shards40", since)

    assert len(runs) == 1, [r["name"] for r in runs]
    assert run_input(aws, runs[0])["trigger"] == "marker"
    waiters = waiters_of(aws, "shards40", since)
    assert [json.loads(w["output"])["outcome"] for w in waiters] == ["identical"], (
        "the shards' quiet period ends finding the marker's run"
    )


def test_a_thousand_files_synced_without_a_marker_start_one_run_that_reads_them_all(aws: EmbeddedAws) -> None:
    # As `aws s3 sync ./parts/ s3://<input>/training/sync1000/` would: 1,000 files straight in the dataset
    # folder, no _READY. One row each (the sample's rows over again), so the processing job's row count proves
    # it read every file of the snapshot.
    since = configure(aws, "sync1000")
    for i in range(1000):
        put(aws, f"training/sync1000/part-{i:04d}.csv", csv([IRIS_ROWS[i % len(IRIS_ROWS)]]))
    last_upload = time.time()

    runs = runs_of(aws, "sync1000", since)

    assert len(runs) == 1, [r["name"] for r in runs]
    assert run_input(aws, runs[0])["trigger"] == "quiet-period"
    assert runs[0]["startDate"].timestamp() >= last_upload + 2.5, "not before the folder was quiet (3 s)"
    done = finished(aws, runs[0])
    files = read_json(aws, run_input(aws, runs[0])["manifest"])["files"]
    assert len([f for f in files if f["split"] == "training" and f["key"].endswith(".csv")]) == 1000
    assert rows_processed(aws, done) == 1000


def test_the_same_object_event_delivered_a_hundred_times_starts_one_run(aws: EmbeddedAws) -> None:
    since = configure(aws, "redelivered")
    created = put(aws, "training/redelivered/data.csv", csv(IRIS_ROWS))
    bucket = aws.outputs["InputBucketName"]
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {
            "key": "training/redelivered/data.csv",
            "size": len(csv(IRIS_ROWS)),
            "etag": created["ETag"].strip('"'),
            "version-id": created["VersionId"],
            "sequencer": "0062E99A88DC407460",
        },
        "reason": "PutObject",
    }
    entry = {"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}
    events = aws.client("events")
    for _ in range(10):  # PutEvents takes at most 10 entries
        assert events.put_events(Entries=[entry] * 10)["FailedEntryCount"] == 0

    runs = runs_of(aws, "redelivered", since)

    assert len(runs) == 1, [r["name"] for r in runs]
    deliveries = [
        i
        for i in aws.state.registry.async_invocations
        if isinstance(i.event, dict) and i.event.get("detail") == detail
    ]
    assert len(deliveries) == 100 and all(i.error is None for i in deliveries)


def test_identical_bytes_again_start_nothing_and_a_forced_marker_starts_one_run(aws: EmbeddedAws) -> None:
    since = configure(aws, "same-bytes")
    put(aws, "training/same-bytes/data.csv", csv(IRIS_ROWS))
    [first] = runs_of(aws, "same-bytes", since)

    again = time.time()  # after the first run's start: runs since then are new ones
    put(aws, "training/same-bytes/data.csv", csv(IRIS_ROWS))  # a new version of the very same bytes
    assert runs_of(aws, "same-bytes", again) == []
    [waiter] = waiters_of(aws, "same-bytes", again)
    assert json.loads(waiter["output"])["run"]["reason"].startswith(f"identical to run {first['name']}")

    forced = time.time()
    put(aws, "training/same-bytes/_READY", json.dumps({"force": True}))
    [second] = runs_of(aws, "same-bytes", forced)
    assert second["name"] != first["name"] and run_input(aws, second)["force"] is True


def test_version_one_then_two_back_to_back_each_run_trains_its_own_version(aws: EmbeddedAws) -> None:
    since = configure(aws, "race")
    v1 = csv(IRIS_ROWS)  # 150 rows
    shuffled = [
        f"{row.rsplit(',', 1)[0]},{IRIS_ROWS[(i * 7) % 150].rsplit(',', 1)[1]}"
        for i, row in enumerate(IRIS_ROWS[:60])
    ]
    v2 = csv(shuffled)  # 60 rows, labels shuffled
    first = put(aws, "training/race/data.csv", v1)
    put(aws, "training/race/_READY", b"")
    aws.state.registry.wait_for_async_invocations(timeout=30)  # the marker's run has listed the dataset
    second = put(aws, "training/race/data.csv", v2)  # at once: before the run's jobs read anything

    runs = runs_of(aws, "race", since)

    assert len(runs) == 2, [r["name"] for r in runs]
    by_trigger = {run_input(aws, r)["trigger"]: r for r in runs}
    run_v1, run_v2 = by_trigger["marker"], by_trigger["quiet-period"]
    manifest = read_json(aws, run_input(aws, run_v1)["manifest"])
    [data] = [f for f in manifest["files"] if f["split"] == "training"]
    assert (data["versionId"], data["etag"], data["size"]) == (first["VersionId"], first["ETag"], len(v1))
    assert rows_processed(aws, finished(aws, run_v1)) == 150, "the run of version 1 trained version 1"
    [data] = [
        f for f in read_json(aws, run_input(aws, run_v2)["manifest"])["files"] if f["split"] == "training"
    ]
    assert data["versionId"] == second["VersionId"]
    assert rows_processed(aws, finished(aws, run_v2)) == 60
    snapshot = json.loads(finished(aws, run_v1)["output"])["run"]["paths"]["data"]
    copied = (
        aws.client("s3")
        .get_object(Bucket=aws.outputs["OutputBucketName"], Key=snapshot.split("/", 3)[3] + "data.csv")[
            "Body"
        ]
        .read()
    )
    assert hashlib.sha256(copied).hexdigest() == hashlib.sha256(v1).hexdigest()


def test_a_failed_start_lands_in_the_dead_letter_queue_and_the_redrive_starts_the_run(
    aws: EmbeddedAws,
) -> None:
    sqs, queue = aws.client("sqs"), aws.outputs["TriggerDeadLetterQueueUrl"]
    since = configure(aws, "dead-letter")
    put(aws, "training/dead-letter/data.csv", csv(IRIS_ROWS))
    waiters_of(aws, "dead-letter", since)  # the upload's own quiet period is over before the fault is armed

    marker = time.time()  # after the upload's own run started
    # StartExecution throttled for the first try and Lambda's two async retries.
    aws.faults.fail_api("stepfunctions", "StartExecution", "ThrottlingException", times=3)
    put(aws, "training/dead-letter/_READY", json.dumps({"force": True}))
    [delivery] = [
        i
        for i in aws.state.registry.wait_for_async_invocations(timeout=30)
        if i.event.get("detail", {}).get("object", {}).get("key") == "training/dead-letter/_READY"
    ]
    assert delivery.dead_letter_queue, delivery.error
    assert runs_of(aws, "dead-letter", marker) == []
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"

    # The documented step: aws lambda invoke --function-name <RedriveFunctionName> out.json
    response = aws.client("lambda").invoke(FunctionName=aws.outputs["RedriveFunctionName"], Payload=b"{}")
    result = json.loads(response["Payload"].read())

    assert "FunctionError" not in response, result
    assert result["replayed"] == 1 and result["failed"] == []
    [run] = runs_of(aws, "dead-letter", marker)
    assert run_input(aws, run)["force"] is True
    assert sqs.receive_message(QueueUrl=queue).get("Messages") is None
