"""The deployed stack end to end: upload -> EventBridge -> starter -> pipeline -> jobs -> endpoint -> predict.

Each scenario uses its own dataset name: they share the package's stack without seeing each other's runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from offline.embedded import EmbeddedAws, list_executions
from offline.follow import ExecutionFollower
from tests.e2e.conftest import receive_notifications, subscribe_queue, waiters_of

SAMPLE = Path(__file__).resolve().parents[2] / "offline" / "sample_data" / "iris"
RUN_TIMEOUT = 180.0
# One row of each species from the iris data, the target column left out.
SETOSA = "5.1,3.5,1.4,0.2"
VIRGINICA = "7.7,3.0,6.1,2.3"


def upload(aws: EmbeddedAws, dataset: str, config: dict[str, Any]) -> float:
    """pipeline.json then the iris CSV under training/<dataset>/; returns the time just before the upload."""
    started = time.time() - 1
    s3 = aws.client("s3")
    bucket = aws.outputs["InputBucketName"]
    s3.put_object(Bucket=bucket, Key=f"training/{dataset}/pipeline.json", Body=json.dumps(config).encode())
    s3.upload_file(str(SAMPLE / "iris.csv"), bucket, f"training/{dataset}/iris.csv")
    return started


def runs_of(aws: EmbeddedAws, dataset: str, count: int, since: float) -> list[dict[str, Any]]:
    """The finished pipeline executions of this dataset started since `since` (waits for `count` of them).

    Once the upload's events are handled and the dataset's batch waiters have ended, every execution the
    upload started exists, so a missing one fails at once instead of after a timeout.
    """
    waiters_of(aws, dataset, since)
    arn = aws.outputs["PipelineStateMachineArn"]
    started = [
        e
        for e in list_executions(aws.client("stepfunctions"), arn, since)
        if e["name"].startswith(f"{dataset}-")
    ]
    assert len(started) >= count, f"{dataset}: {len(started)} execution(s) started, expected {count}"
    return [
        e for e in aws.wait_for_executions(arn, 0, RUN_TIMEOUT, since) if e["name"].startswith(f"{dataset}-")
    ]


def failure_details(aws: EmbeddedAws, execution: dict[str, Any]) -> str:
    history = aws.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])[
        "events"
    ]
    return json.dumps([e for e in history if "Failed" in e["type"]], default=str)


def predict(aws: EmbeddedAws, endpoint: str, rows: str) -> list[dict[str, Any]]:
    response = aws.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, ContentType="text/csv", Accept="application/json", Body=rows.encode()
    )
    return json.loads(response["Body"].read())["predictions"]


def endpoint_name(aws: EmbeddedAws, dataset: str) -> str:
    return f"{aws.stack_name}-{dataset}"  # naming.dataset_resource_name


def iris_config(**extra: Any) -> dict[str, Any]:
    config = json.loads((SAMPLE / "pipeline.json").read_text())
    config.update(extra)
    return config


@pytest.fixture(scope="module")
def captured_s3_events(aws: EmbeddedAws) -> str:
    """An SQS queue that receives a copy of every S3 event EventBridge sees from the input bucket."""
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName="e2e-s3-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="e2e-capture-s3",
        EventPattern=json.dumps(
            {"source": ["aws.s3"], "detail": {"bucket": {"name": [aws.outputs["InputBucketName"]]}}}
        ),
    )
    events.put_targets(Rule="e2e-capture-s3", Targets=[{"Id": "queue", "Arn": arn}])
    return url


@pytest.fixture(scope="module")
def notifications(aws: EmbeddedAws) -> str:
    return subscribe_queue(aws, aws.outputs["NotificationTopicArn"], "e2e-notifications")


@pytest.fixture(scope="module")
def first_run(aws: EmbeddedAws, captured_s3_events: str) -> dict[str, Any]:
    since = upload(aws, "e2e-iris", iris_config())
    [run] = runs_of(aws, "e2e-iris", 1, since)
    assert run["status"] == "SUCCEEDED", failure_details(aws, run)
    return run


def test_upload_runs_to_a_serving_endpoint_with_a_correct_prediction(
    aws: EmbeddedAws, first_run: dict[str, Any]
) -> None:
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=endpoint_name(aws, "e2e-iris"))
    assert endpoint["EndpointStatus"] == "InService"
    setosa, virginica = predict(aws, endpoint["EndpointName"], f"{SETOSA}\n{VIRGINICA}\n")
    assert setosa["label"] == "setosa"
    assert virginica["label"] == "virginica"
    assert set(setosa["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert sum(setosa["probabilities"].values()) == pytest.approx(1.0)


def test_the_same_upload_delivered_twice_starts_one_execution(
    aws: EmbeddedAws, first_run: dict[str, Any], captured_s3_events: str
) -> None:
    sqs = aws.client("sqs")
    delivered = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=captured_s3_events, MaxNumberOfMessages=10)["Messages"]
    ]
    [created] = [
        e
        for e in delivered
        if e["detail-type"] == "Object Created"
        and e["detail"]["object"]["key"] == "training/e2e-iris/iris.csv"
    ]
    # EventBridge delivers at least once: hand the very same event to the bus a second time.
    redelivered = time.time() - 0.5
    response = aws.client("events").put_events(
        Entries=[
            {
                "Source": created["source"],
                "DetailType": created["detail-type"],
                "Detail": json.dumps(created["detail"]),
                "Resources": created.get("resources", []),
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
    invocations = aws.state.registry.wait_for_async_invocations(timeout=30)
    assert all(i.error is None for i in invocations), [i.error for i in invocations if i.error]
    [waiter] = waiters_of(aws, "e2e-iris", redelivered)  # the redelivery opens a quiet period...
    assert json.loads(waiter["output"])["outcome"] == "identical"  # ...which finds the run of that content
    deliveries = [
        i for i in invocations if isinstance(i.event, dict) and i.event.get("detail") == created["detail"]
    ]
    assert len(deliveries) == 2, "the upload's event and its redelivery both reached the starter"
    pipeline = aws.outputs["PipelineStateMachineArn"]
    later = list_executions(aws.client("stepfunctions"), pipeline, since=redelivered)
    assert [e["name"] for e in later if e["name"].startswith("e2e-iris-")] == []
    runs = list_executions(aws.client("stepfunctions"), pipeline)
    assert [e["name"] for e in runs if e["name"] == first_run["name"]] == [first_run["name"]]


def test_a_second_upload_updates_the_endpoint(aws: EmbeddedAws, first_run: dict[str, Any]) -> None:
    sagemaker = aws.client("sagemaker")
    name = endpoint_name(aws, "e2e-iris")
    before = sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]
    since = time.time() - 1
    # New content (the rows in another order) under the same key: a new dataset version, so a new run.
    header, *rows = (SAMPLE / "iris.csv").read_text().splitlines()
    aws.client("s3").put_object(
        Bucket=aws.outputs["InputBucketName"],
        Key="training/e2e-iris/iris.csv",
        Body="\n".join([header, *reversed(rows)]).encode() + b"\n",
    )
    [second] = runs_of(aws, "e2e-iris", 1, since)
    assert second["status"] == "SUCCEEDED", failure_details(aws, second)
    assert second["name"] != first_run["name"]
    after = sagemaker.describe_endpoint(EndpointName=name)
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] != before
    packages = sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]
    assert len(packages) == 2
    assert predict(aws, name, SETOSA)[0]["label"] == "setosa"


def test_a_missing_target_column_fails_with_that_cause_and_notifies(
    aws: EmbeddedAws, notifications: str
) -> None:
    since = upload(aws, "e2e-bad", iris_config(target_column="flower_kind"))
    [run] = runs_of(aws, "e2e-bad", 1, since)
    assert run["status"] == "FAILED"
    details = failure_details(aws, run)
    assert "flower_kind" in details
    assert "sepal_length" in details  # the columns that were found
    messages = receive_notifications(aws, notifications)
    failed = [m for m in messages if "e2e-bad" in m["Message"] and "flower_kind" in m["Message"]]
    assert failed, messages
    assert "fail" in failed[0]["Subject"].lower()
    with pytest.raises(aws.client("sagemaker").exceptions.ClientError):
        aws.client("sagemaker").describe_endpoint(EndpointName=endpoint_name(aws, "e2e-bad"))

    # What `make demo` prints for such a run: the failing state, and the cause naming the column.
    follower = ExecutionFollower(aws.client("stepfunctions"))
    lines = follower.poll(run["executionArn"], "Pipeline")
    assert any(line.lstrip().startswith("FAIL") for line in lines), lines
    final = follower.final_failure(run["executionArn"])
    assert final is not None
    assert "flower_kind" in final.cause


def test_a_training_dataset_error_reaches_the_notification_from_the_jobs_log(
    aws: EmbeddedAws, notifications: str
) -> None:
    """The container's train command replaces the recipe's failure file, so the notification reads the log."""
    since = upload(aws, "e2e-badtrain", iris_config(hyperparameters={"n_estimators": 0}))
    [run] = runs_of(aws, "e2e-badtrain", 1, since)
    assert run["status"] == "FAILED"
    [job] = aws.client("sagemaker").list_training_jobs(NameContains="e2e-badtrain")["TrainingJobSummaries"]
    reason = aws.client("sagemaker").describe_training_job(TrainingJobName=job["TrainingJobName"])[
        "FailureReason"
    ]
    assert "ExecuteUserScriptError" in reason and "must be at least 1" not in reason
    messages = receive_notifications(aws, notifications)
    [failed] = [m for m in messages if "e2e-badtrain" in m["Message"]]
    cause = json.loads(failed["Message"])["cause"]
    assert "DatasetError: hyperparameter n-estimators=0 must be at least 1" in cause, cause


def test_manual_approval_waits_and_approving_deploys(aws: EmbeddedAws) -> None:
    sagemaker = aws.client("sagemaker")
    name = endpoint_name(aws, "e2e-manual")
    since = upload(aws, "e2e-manual", iris_config(approval_mode="manual"))
    [run] = runs_of(aws, "e2e-manual", 1, since)
    assert run["status"] == "SUCCEEDED", failure_details(aws, run)
    [package] = sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    with pytest.raises(sagemaker.exceptions.ClientError):
        sagemaker.describe_endpoint(EndpointName=name)

    approved = time.time() - 1
    sagemaker.update_model_package(ModelPackageArn=package["ModelPackageArn"], ModelApprovalStatus="Approved")
    aws.state.registry.wait_for_async_invocations(timeout=30)
    deploy_arn = aws.outputs["DeployStateMachineArn"]
    assert list_executions(aws.client("stepfunctions"), deploy_arn, approved), (
        "approving started no deployment"
    )
    [deployment] = aws.wait_for_executions(deploy_arn, 1, RUN_TIMEOUT, since=approved)
    assert deployment["status"] == "SUCCEEDED", failure_details(aws, deployment)
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    assert predict(aws, name, VIRGINICA)[0]["label"] == "virginica"


def test_uploads_do_not_fire_the_schedule_rules(aws: EmbeddedAws, first_run: dict[str, Any]) -> None:
    # moto matches every event against a rule without a pattern; AWS's schedule rules match no event.
    events = aws.client("events")
    scheduled = {
        target["Arn"].rsplit(":function:", 1)[-1]
        for rule in events.list_rules()["Rules"]
        if rule.get("ScheduleExpression")
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    }
    assert scheduled, "the stack has schedule rules (the cost guard)"
    invoked = {invocation.function_name for invocation in aws.state.registry.async_invocations}
    assert invoked, "the uploads reached the starter through EventBridge"
    assert not invoked & scheduled
