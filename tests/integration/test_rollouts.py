"""Rollouts on the real pipeline and deploy definitions (moto's ASL interpreter through the offline seams):
one rollout per endpoint, retries that mean something, every endpoint status, rollback by approval.

Each scenario uses its own dataset, so they share one embedded account. Needs `make build` first.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_pipeline_workflow import (
    BUILD,
    BUILD_DIR,
    FAST,
    IRIS,
    endpoint_tags,
    predict,
    run_of,
    upload,
    visited,
)

pytestmark = pytest.mark.skipif(not BUILD.is_file(), reason="run `make build` (sam build) first")


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    from offline.embedded import EmbeddedAws

    with EmbeddedAws(build_dir=BUILD_DIR) as embedded:
        yield embedded


def shuffled_labels(csv: str) -> str:
    """The same rows with the labels shuffled: a model trained on it is much worse."""
    header, *rows = csv.strip().splitlines()
    labels = [row.rsplit(",", 1)[1] for row in rows]
    random.Random(7).shuffle(labels)
    return "\n".join(
        [header, *(f"{r.rsplit(',', 1)[0]},{label}" for r, label in zip(rows, labels, strict=True))]
    )


def deployments_of(aws: Any, endpoint: str) -> list[dict[str, Any]]:
    sfn = aws.client("stepfunctions")
    found = sfn.list_executions(stateMachineArn=aws.outputs["DeployStateMachineArn"])["executions"]
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in found if endpoint in e["name"]]


def wait_until(condition: Any, what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def hold_rollout_lease(aws: Any, endpoint: str) -> Any:
    """Another deployment holds the endpoint: a running execution (waiting for a task token) owns its lease
    item. Returns a function that ends the holder without releasing (the lease turns stale)."""
    sfn, sqs = aws.client("stepfunctions"), aws.client("sqs")
    queue = sqs.create_queue(QueueName=f"hold-{endpoint}")["QueueUrl"]
    waits = {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}}
    task = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "End": True}
    definition = {"StartAt": "Hold", "States": {"Hold": {**task, "Parameters": waits}}}
    role = aws.client("iam").list_roles()["Roles"][0]["Arn"]
    machine = sfn.create_state_machine(
        name=f"hold-{endpoint}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    holder = sfn.start_execution(stateMachineArn=machine, name="holder")["executionArn"]
    aws.client("dynamodb").put_item(
        TableName=aws.deployment.resources["CoordinationTable"],
        Item={
            "pk": {"S": f"rollout#{endpoint}"},
            "holder": {"S": holder},
            "packageArn": {"S": "held-by-the-test"},
            "acquiredAt": {"N": str(int(time.time()))},
            "expiresAt": {"N": str(int(time.time()) + 3600)},
        },
    )

    def end_holder() -> None:
        [message] = wait_until(lambda: sqs.receive_message(QueueUrl=queue).get("Messages"), "the holder")
        sfn.send_task_success(taskToken=json.loads(message["Body"])["token"], output="{}")

    return end_holder


def test_two_versions_back_to_back_both_end_with_an_outcome_and_the_better_model_serves(aws):
    endpoint = f"{aws.stack_name}-race"
    end_holder = hold_rollout_lease(aws, endpoint)
    since = upload(aws, "race", FAST, shuffled_labels(IRIS))  # version 1: the worse model
    wait_until(lambda: len(deployments_of(aws, endpoint)) == 1, "version 1's deployment to wait")
    upload(aws, "race", FAST)  # version 2, right behind it: the better model

    def both_waiting() -> bool:
        deployments = deployments_of(aws, endpoint)
        waited = [d for d in deployments if "WaitForRolloutTurn" in visited(aws, d["executionArn"])]
        assert all("RollOut" not in visited(aws, d["executionArn"]) for d in deployments), "went ahead"
        return len(waited) == 2

    wait_until(both_waiting, "both deployments to wait for the endpoint")
    end_holder()  # it ends without releasing: its lease is stale, the waiting deployments go on

    runs = run_of(aws, "race", since, count=2)
    assert [r["status"] for r in runs] == ["SUCCEEDED", "SUCCEEDED"], [r.get("cause") for r in runs]
    outputs = [json.loads(r["output"]) for r in runs]
    outcomes = sorted(o["deployment"]["output"]["outcome"] for o in outputs)
    assert outcomes in (["deployed", "deployed"], ["deployed", "superseded"])
    better = max(outputs, key=lambda o: o["gate"]["value"])
    worse = min(outputs, key=lambda o: o["gate"]["value"])
    assert better["gate"]["value"] > worse["gate"]["value"] + 0.2
    described = aws.client("sagemaker").describe_endpoint(EndpointName=endpoint)
    serving = endpoint_tags(aws, described["EndpointArn"])["mlops:model-package-arn"]
    assert serving == better["registration"]["modelPackageArn"]
    assert predict(aws, endpoint, "5.1,3.5,1.4,0.2\n")["predictions"][0]["label"] == "setosa"
    superseded = [o for o in outputs if o["deployment"]["output"]["outcome"] == "superseded"]
    for run in superseded:
        assert "is worse than the serving model" in run["deployment"]["output"]["reason"]
        assert run["notification"]["outcome"] == "superseded"
    lease = aws.client("dynamodb").get_item(
        TableName=aws.deployment.resources["CoordinationTable"], Key={"pk": {"S": f"rollout#{endpoint}"}}
    )
    assert "Item" not in lease  # released by the last deployment


def test_a_request_sagemaker_rejects_fails_the_run_in_one_attempt_with_its_message(aws):
    message = "Value 'ml.m5.huge' at 'resourceConfig.instanceType' failed to satisfy constraint"
    aws.faults.fail_api("sagemaker", "CreateTrainingJob", "ValidationException", times=3, message=message)
    since = upload(aws, "invalid", {**FAST, "approval_mode": "manual"})
    [run] = run_of(aws, "invalid", since)
    assert run["status"] == "FAILED" and run["error"] == "SageMaker.AmazonSageMakerException"
    assert (
        run["cause"].startswith(f"TrainModel: {message}")
        and "Error Code: ValidationException" in run["cause"]
    )
    assert [f.error_code for f in aws.faults.fired] == ["ValidationException"]  # one attempt, no retry
    assert visited(aws, run["executionArn"]).count("TrainModelJob") == 1


def test_throttling_and_a_capacity_failure_are_retried_under_new_names(aws):
    aws.faults.fail_api("sagemaker", "CreateTrainingJob", "ThrottlingException")
    aws.faults.force_job_outcome(
        "training", "Failed", "CapacityError: Unable to provision requested ML compute capacity."
    )
    since = upload(aws, "capacity", {**FAST, "approval_mode": "manual"})
    [run] = run_of(aws, "capacity", since)
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert visited(aws, run["executionArn"]).count("TrainModelJob") == 3
    jobs = aws.client("sagemaker").list_training_jobs(
        NameContains=json.loads(run["output"])["run"]["names"]["jobPrefix"]
    )
    statuses = sorted(j["TrainingJobStatus"] for j in jobs["TrainingJobSummaries"])
    assert statuses == ["Completed", "Failed"]  # the throttled attempt created nothing; two names used


def test_update_rollback_failed_during_an_update_ends_the_deploy_with_that_cause(aws):
    since = upload(aws, "stuck", FAST)
    [first] = run_of(aws, "stuck", since)
    assert first["status"] == "SUCCEEDED", first.get("cause")
    reason = "The rollback of the update failed: the old fleet did not come back"
    aws.faults.force_endpoint_update_outcome("UpdateRollbackFailed", reason)

    since = upload(aws, "stuck", FAST, IRIS + "\n")
    [second] = [r for r in run_of(aws, "stuck", since) if r["executionArn"] != first["executionArn"]]

    assert second["status"] == "FAILED" and second["error"] == "EndpointUpdateRollbackFailed"
    assert "is UpdateRollbackFailed (The rollback of the update failed" in second["cause"]
    assert "needs a person" in second["cause"]
    package = aws.client("sagemaker").list_model_packages(  # the second run's, the newest
        ModelPackageGroupName=f"{aws.stack_name}-stuck", SortBy="CreationTime", SortOrder="Descending"
    )["ModelPackageSummaryList"][0]["ModelPackageArn"]
    tags = {t["Key"]: t["Value"] for t in aws.client("sagemaker").list_tags(ResourceArn=package)["Tags"]}
    assert tags["mlops:deploy-outcome"] == "failed" and "UpdateRollbackFailed" in tags["mlops:deploy-detail"]

    # The next deployment does not wait for hours: the endpoint needs a person, and it says so at once.
    since = upload(aws, "stuck", FAST, IRIS + "\n\n")
    [third] = [
        r
        for r in run_of(aws, "stuck", since)
        if r["executionArn"] not in (first["executionArn"], second["executionArn"])
    ]
    assert third["status"] == "FAILED" and third["error"] == "EndpointFailedError"
    assert "is UpdateRollbackFailed" in third["cause"] and "update-endpoint" in third["cause"]


def test_re_approving_an_older_package_deploys_it_again(aws):
    since = upload(aws, "undo", FAST)
    [first] = run_of(aws, "undo", since)
    since = upload(aws, "undo", FAST, IRIS + "\n")
    [second] = [r for r in run_of(aws, "undo", since) if r["executionArn"] != first["executionArn"]]
    assert (first["status"], second["status"]) == ("SUCCEEDED", "SUCCEEDED"), second.get("cause")
    older = json.loads(first["output"])["registration"]["modelPackageArn"]
    newer = json.loads(second["output"])["registration"]["modelPackageArn"]
    endpoint = json.loads(first["output"])["run"]["names"]["endpoint"]
    sagemaker = aws.client("sagemaker")
    arn = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointArn"]
    assert endpoint_tags(aws, arn)["mlops:model-package-arn"] == newer

    sagemaker.update_model_package(ModelPackageArn=older, ModelApprovalStatus="Approved")

    rollback = wait_until(
        lambda: [
            d
            for d in deployments_of(aws, endpoint)
            if json.loads(d["input"]).get("source") == "approval" and d["status"] != "RUNNING"
        ],
        "the rollback deployment",
    )
    assert [d["status"] for d in rollback] == ["SUCCEEDED"], rollback[0].get("cause")
    assert endpoint_tags(aws, arn)["mlops:model-package-arn"] == older
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=older)["Tags"]}
    assert tags["mlops:deploy-outcome"] == "deployed"
