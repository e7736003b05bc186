"""Batch predictions end to end: inference/<dataset>/ upload -> EventBridge -> starter -> batch state machine
-> a transform job that really runs the dataset's model -> predictions joined to the input rows, notified."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest

from offline.embedded import EmbeddedAws, list_executions
from tests.e2e.conftest import receive_notifications, subscribe_queue
from tests.e2e.test_pipeline import SAMPLE, failure_details, iris_config, runs_of, upload

DATASET = "e2e-batch-iris"
TIMEOUT = 120.0
FEATURES = "sepal_length,sepal_width,petal_length,petal_width"


def iris_rows() -> list[list[str]]:
    with (SAMPLE / "iris.csv").open() as handle:
        return list(csv.reader(handle))[1:]


@pytest.fixture(scope="module")
def trained(aws: EmbeddedAws) -> dict[str, Any]:
    """A model of the dataset: one pipeline run (auto approval), so its endpoint serves a known package."""
    since = upload(aws, DATASET, iris_config())
    [run] = runs_of(aws, DATASET, 1, since)
    assert run["status"] == "SUCCEEDED", failure_details(aws, run)
    return run


@pytest.fixture(scope="module")
def notifications(aws: EmbeddedAws) -> str:
    return subscribe_queue(aws, aws.outputs["NotificationTopicArn"], "e2e-batch-notifications")


def batch_names(aws: EmbeddedAws) -> set[str]:
    return {
        e["name"] for e in list_executions(aws.client("stepfunctions"), aws.outputs["BatchStateMachineArn"])
    }


def drop_batch(aws: EmbeddedAws, key: str, body: str) -> dict[str, Any]:
    """Upload one object under inference/ and wait for the one batch execution it starts."""
    before, since = batch_names(aws), time.time() - 1
    aws.client("s3").put_object(Bucket=aws.outputs["InputBucketName"], Key=key, Body=body.encode())
    aws.state.registry.wait_for_async_invocations(timeout=30)
    started = batch_names(aws) - before
    assert len(started) == 1, f"{key}: {len(started)} batch executions started"
    arn = aws.outputs["BatchStateMachineArn"]
    [done] = [e for e in aws.wait_for_executions(arn, 0, TIMEOUT, since) if e["name"] in started]
    return done


def batch_notification(aws: EmbeddedAws, queue: str, subject_start: str) -> dict[str, Any]:
    found = [n for n in receive_notifications(aws, queue) if n["Subject"].startswith(subject_start)]
    assert len(found) == 1, [n["Subject"] for n in found]
    return json.loads(found[0]["Message"])


def read_output(aws: EmbeddedAws, uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_a_csv_batch_gets_every_input_row_with_its_prediction(
    aws: EmbeddedAws, trained: dict[str, Any], notifications: str
) -> None:
    rows = iris_rows()
    body = FEATURES + "\n" + "".join(",".join(row[:4]) + "\n" for row in rows)
    key = f"inference/{DATASET}/all-flowers.csv"
    execution = drop_batch(aws, key, body)
    assert execution["status"] == "SUCCEEDED", failure_details(aws, execution)

    message = batch_notification(aws, notifications, "Batch predicted")
    assert message["rows"] == message["predictedRows"] == len(rows)
    assert message["unreadableRows"] == 0
    assert message["model"] == f"the model endpoint {aws.stack_name}-{DATASET} serves"
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=f"{aws.stack_name}-{DATASET}")
    tags = aws.client("sagemaker").list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    assert {"Key": "mlops:model-package-arn", "Value": message["modelPackageArn"]} in tags
    [file] = message["files"]
    assert message["predictions"].startswith(f"s3://{aws.outputs['OutputBucketName']}/predictions/{DATASET}/")

    lines = read_output(aws, file["predictions"]).splitlines()
    assert lines[0] == FEATURES + ",prediction"
    joined = list(csv.reader(lines[1:]))
    assert [line[:4] for line in joined] == [row[:4] for row in rows]  # every input row, in order
    predicted = [line[4] for line in joined]
    assert predicted[0] == "setosa"  # 5.1,3.5,1.4,0.2
    accuracy = sum(p == row[4] for p, row in zip(predicted, rows, strict=True)) / len(rows)
    assert accuracy >= 0.9, accuracy
    # The upload itself is left alone: one version, the bytes as sent.
    s3 = aws.client("s3")
    versions = s3.list_object_versions(Bucket=aws.outputs["InputBucketName"], Prefix=key)["Versions"]
    assert len(versions) == 1
    assert s3.get_object(Bucket=aws.outputs["InputBucketName"], Key=key)["Body"].read().decode() == body


def test_rows_the_model_cannot_read_are_named_and_the_others_predicted(
    aws: EmbeddedAws, trained: dict[str, Any], notifications: str
) -> None:
    body = (
        f"{FEATURES}\n"
        "5.1,3.5,1.4,0.2\n"  # line 2
        "5.0,lots,1.4,0.2\n"  # line 3: not a number
        "\n"  # line 4: blank, not a record
        "7.7,3.0,6.1,2.3\n"  # line 5
        "6.3,2.5\n"  # line 6: two values
        "6.4,3.2,4.5,1.5\n"  # line 7
    )
    key = f"inference/{DATASET}/mixed.csv"
    execution = drop_batch(aws, key, body)
    assert execution["status"] == "SUCCEEDED", failure_details(aws, execution)

    message = batch_notification(aws, notifications, "Batch predicted")
    assert (message["rows"], message["predictedRows"], message["unreadableRows"]) == (5, 3, 2)
    assert [entry.split(":")[0] for entry in message["unreadable"]] == [f"{key} line 3", f"{key} line 6"]
    assert "lots" in message["unreadable"][0] or "sepal_width" in message["unreadable"][0]
    assert "2 values" in message["unreadable"][1]

    [file] = message["files"]
    joined = list(csv.reader(io.StringIO(read_output(aws, file["predictions"]))))
    answers = {",".join(line[:-1]): line[-1] for line in joined}
    assert answers["5.1,3.5,1.4,0.2"] == "setosa"
    assert answers["7.7,3.0,6.1,2.3"] == "virginica"
    assert answers["6.4,3.2,4.5,1.5"] in {"versicolor", "virginica"}
    assert answers["5.0,lots,1.4,0.2"].startswith("ERROR: ")
    summary = json.loads(read_output(aws, message["summary"]))
    assert [(b["file"], b["line"]) for b in summary["unreadable"]] == [(key, 3), (key, 6)]


def test_without_an_endpoint_the_latest_approved_package_predicts(
    aws: EmbeddedAws, trained: dict[str, Any], notifications: str
) -> None:
    sagemaker = aws.client("sagemaker")
    endpoint = f"{aws.stack_name}-{DATASET}"
    sagemaker.delete_endpoint(EndpointName=endpoint)  # as the cost guard does with an idle endpoint
    execution = drop_batch(aws, f"inference/{DATASET}/one.csv", "6.0,2.2,5.0,1.5\n5.1,3.5,1.4,0.2\n")
    assert execution["status"] == "SUCCEEDED", failure_details(aws, execution)
    message = batch_notification(aws, notifications, "Batch predicted")
    assert message["model"].startswith(f"the latest Approved package of {endpoint} (no endpoint")
    [file] = message["files"]
    assert read_output(aws, file["predictions"]).splitlines()[1] == "5.1,3.5,1.4,0.2,setosa"


def test_a_batch_for_a_dataset_without_a_model_is_refused_and_notified(
    aws: EmbeddedAws, notifications: str
) -> None:
    execution = drop_batch(aws, "inference/e2e-never-trained/rows.csv", f"{FEATURES}\n5.1,3.5,1.4,0.2\n")
    assert execution["status"] == "FAILED"
    history = aws.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])[
        "events"
    ]
    [failed] = [e for e in history if e["type"] == "ExecutionFailed"]
    assert failed["executionFailedEventDetails"]["error"] == "BatchRefused"
    message = batch_notification(aws, notifications, "Batch refused: e2e-never-trained/")
    assert message["reason"].startswith("no model for dataset 'e2e-never-trained'")
    assert "training/e2e-never-trained/" in message["reason"]
    # Nothing was predicted and no transform job ran.
    assert not aws.client("sagemaker").list_transform_jobs(NameContains="never")["TransformJobSummaries"]


def test_a_folder_batch_starts_with_its_ready_marker_and_other_files_start_nothing(
    aws: EmbeddedAws, trained: dict[str, Any], notifications: str
) -> None:
    s3, bucket = aws.client("s3"), aws.outputs["InputBucketName"]
    before = batch_names(aws)
    s3.put_object(Bucket=bucket, Key=f"inference/{DATASET}/week/a.csv", Body=b"5.1,3.5,1.4,0.2\n")
    s3.put_object(Bucket=bucket, Key=f"inference/{DATASET}/week/b.csv", Body=b"7.7,3.0,6.1,2.3\n")
    s3.put_object(Bucket=bucket, Key=f"inference/{DATASET}/notes.txt", Body=b"not a batch\n")
    aws.state.registry.wait_for_async_invocations(timeout=30)
    assert batch_names(aws) == before  # the folder waits for _READY; a .txt file is no batch

    execution = drop_batch(aws, f"inference/{DATASET}/week/_READY", "")
    assert execution["status"] == "SUCCEEDED", failure_details(aws, execution)
    message = batch_notification(aws, notifications, "Batch predicted")
    assert [f["input"] for f in message["files"]] == [f"inference/{DATASET}/week/{n}.csv" for n in "ab"]
    answers = [read_output(aws, f["predictions"]).strip() for f in message["files"]]
    assert answers == ["5.1,3.5,1.4,0.2,setosa", "7.7,3.0,6.1,2.3,virginica"]


def states_entered(aws: EmbeddedAws, execution_arn: str) -> list[str]:
    pages = (
        aws.client("stepfunctions")
        .get_paginator("get_execution_history")
        .paginate(executionArn=execution_arn)
    )
    return [
        e["stateEnteredEventDetails"]["name"]
        for p in pages
        for e in p["events"]
        if "stateEnteredEventDetails" in e
    ]


def test_a_throttled_model_and_a_transform_job_short_of_capacity_are_retried(
    aws: EmbeddedAws, trained: dict[str, Any], notifications: str
) -> None:
    aws.faults.fail_api("sagemaker", "CreateModel", "ThrottlingException")
    aws.faults.force_job_outcome(
        "transform", "Failed", "CapacityError: Unable to provision requested ML compute capacity."
    )

    execution = drop_batch(aws, f"inference/{DATASET}/retried.csv", f"{FEATURES}\n5.1,3.5,1.4,0.2\n")

    assert execution["status"] == "SUCCEEDED", failure_details(aws, execution)
    entered = states_entered(aws, execution["executionArn"])
    assert entered.count("CreateBatchModelCall") == 2 and entered.count("RunTransformJob") == 2
    message = batch_notification(aws, notifications, "Batch predicted")
    [file] = message["files"]
    assert read_output(aws, file["predictions"]).splitlines()[1] == "5.1,3.5,1.4,0.2,setosa"
    prefix = json.loads(execution["output"])["prepared"]["namePrefix"]
    jobs = aws.client("sagemaker").list_transform_jobs(NameContains=prefix)["TransformJobSummaries"]
    assert sorted(j["TransformJobStatus"] for j in jobs) == ["Completed", "Failed"]  # a new name each attempt
