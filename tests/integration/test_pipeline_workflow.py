"""The real pipeline and deploy definitions, executed by moto's ASL interpreter through the offline seams
(offline.embedded.EmbeddedAws): real handlers from `sam build`, real jobs, a real endpoint.

Each scenario uses its own dataset, so they share one embedded account (deploying takes seconds).
Needs `make build` first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# MLOPS_BUILD_DIR: a private `sam build --build-dir` output instead of .aws-sam/build.
BUILD_DIR = Path(os.environ.get("MLOPS_BUILD_DIR", ROOT / ".aws-sam" / "build"))
BUILD = BUILD_DIR / "template.yaml"
IRIS = (ROOT / "offline" / "sample_data" / "iris" / "iris.csv").read_text()
FAST = {"target_column": "species", "hyperparameters": {"n_estimators": 10}}

pytestmark = pytest.mark.skipif(not BUILD.is_file(), reason="run `make build` (sam build) first")


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    from offline.embedded import EmbeddedAws

    with EmbeddedAws(build_dir=BUILD_DIR) as embedded:
        yield embedded


def upload(aws: Any, dataset: str, config: dict[str, Any] | None = None, body: str = IRIS) -> float:
    """pipeline.json first (it starts nothing), then the data; returns when the upload started."""
    started = time.time() - 1
    s3, bucket = aws.client("s3"), aws.outputs["InputBucketName"]
    if config is not None:
        s3.put_object(Bucket=bucket, Key=f"training/{dataset}/pipeline.json", Body=json.dumps(config))
    s3.put_object(Bucket=bucket, Key=f"training/{dataset}/data.csv", Body=body)
    return started


def run_of(
    aws: Any, dataset: str, since: float, count: int = 1, timeout: float = 240
) -> list[dict[str, Any]]:
    """The dataset's executions started since `since`, once `count` of them exist and all have ended."""
    sfn, machine = aws.client("stepfunctions"), aws.outputs["PipelineStateMachineArn"]
    deadline = time.monotonic() + timeout
    while True:
        runs = [
            e
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine)
            for e in page["executions"]
            if e["name"].startswith(f"{dataset}-") and e["startDate"].timestamp() >= since
        ]
        if len(runs) >= count and all(e["status"] != "RUNNING" for e in runs):
            runs.sort(key=lambda e: e["startDate"])
            return [sfn.describe_execution(executionArn=e["executionArn"]) for e in runs]
        assert time.monotonic() < deadline, f"{dataset}: wanted {count} finished run(s), have {runs}"
        time.sleep(0.2)


def visited(aws: Any, execution_arn: str) -> list[str]:
    sfn = aws.client("stepfunctions")
    events = [
        e
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        for e in page["events"]
    ]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def endpoint_tags(aws: Any, endpoint_arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in aws.client("sagemaker").list_tags(ResourceArn=endpoint_arn)["Tags"]}


def predict(aws: Any, endpoint: str, rows: str) -> dict[str, Any]:
    response = aws.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, ContentType="text/csv", Accept="application/json", Body=rows
    )
    return json.loads(response["Body"].read())


def test_success_creates_the_endpoint_then_a_second_run_updates_it(aws):
    since = upload(aws, "flowers", FAST)
    [first] = run_of(aws, "flowers", since)
    assert first["status"] == "SUCCEEDED", first.get("cause")
    output = json.loads(first["output"])
    endpoint = output["run"]["names"]["endpoint"]
    deployed = output["deployment"]["output"]
    assert deployed["action"] == "create" and deployed["endpointName"] == endpoint
    sagemaker = aws.client("sagemaker")
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert (
        endpoint_tags(aws, described["EndpointArn"])["mlops:model-package-arn"] == deployed["modelPackageArn"]
    )
    answer = predict(aws, endpoint, "5.1,3.5,1.4,0.2\n")
    assert answer["predictions"][0]["label"] == "setosa"

    since = upload(aws, "flowers", FAST, IRIS + "\n")  # a new version of the dataset
    [second] = [r for r in run_of(aws, "flowers", since) if r["executionArn"] != first["executionArn"]]
    assert second["status"] == "SUCCEEDED", second.get("cause")
    redeployed = json.loads(second["output"])["deployment"]["output"]
    assert redeployed["action"] == "update"
    now = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert now["EndpointConfigName"] == redeployed["endpointConfigName"] != described["EndpointConfigName"]
    assert endpoint_tags(aws, now["EndpointArn"])["mlops:model-package-arn"] == redeployed["modelPackageArn"]


def test_a_model_below_the_threshold_registers_nothing(aws):
    since = upload(aws, "strict", {**FAST, "threshold": 1.01, "metric": "accuracy"})
    [run] = run_of(aws, "strict", since)
    assert run["status"] == "FAILED"
    assert run["error"] == "QualityGateRejected"
    assert "does not meet the threshold: it must be at least 1.01" in run["cause"]
    assert "RegisterModel" not in visited(aws, run["executionArn"])
    groups = aws.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert not any(g["ModelPackageGroupName"].endswith("-strict") for g in groups)


def test_a_failed_training_job_fails_the_run_with_its_reason(aws):
    aws.faults.force_job_outcome("training", "Failed", "AlgorithmError: out of memory")
    since = upload(aws, "oom", {**FAST, "approval_mode": "manual"})
    [run] = run_of(aws, "oom", since)
    assert run["status"] == "FAILED" and run["error"] == "TrainingJobFailed"
    assert (
        run["cause"].startswith("TrainModel: Training job ")
        and "AlgorithmError: out of memory" in run["cause"]
    )


def test_a_timed_out_training_job_fails_as_stopped(aws):
    aws.faults.force_job_outcome("training", "Stopped", "MaxRuntimeExceeded")
    since = upload(aws, "slow", {**FAST, "approval_mode": "manual"})
    [run] = run_of(aws, "slow", since)
    assert run["status"] == "FAILED" and run["error"] == "TrainingJobStopped"
    assert "Stopped: MaxRuntimeExceeded" in run["cause"]
    assert "EvaluateModel" not in visited(aws, run["executionArn"])


def test_throttling_is_retried_and_the_run_succeeds(aws):
    aws.faults.fail_api("sagemaker", "CreateTrainingJob", "ThrottlingException", times=2)
    since = upload(aws, "throttled", {**FAST, "approval_mode": "manual"})
    [run] = run_of(aws, "throttled", since)
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert [f.error_code for f in aws.faults.fired] == ["ThrottlingException"] * 2
    assert json.loads(run["output"])["registration"]["approvalStatus"] == "PendingManualApproval"


def test_an_invalid_pipeline_json_fails_at_once_naming_the_field(aws):
    since = upload(aws, "typo", {"target_column": "species", "rollout": "sideways"})
    [run] = run_of(aws, "typo", since)
    assert run["status"] == "FAILED" and run["error"] == "InvalidConfigError"
    assert "pipeline.json field 'rollout'" in run["cause"] and "PrepareRun" in run["cause"]
    assert "ProcessData" not in visited(aws, run["executionArn"])


def test_a_redelivered_event_starts_one_execution(aws):
    since = upload(aws, "twice", {**FAST, "approval_mode": "manual"})
    [run] = run_of(aws, "twice", since)
    # The very event EventBridge delivered (the seams record each delivery), delivered again.
    [delivered] = [
        i.event
        for i in aws.state.registry.async_invocations
        if i.event.get("detail", {}).get("object", {}).get("key") == "training/twice/data.csv"
    ]
    function = aws.deployment.resources["StartRunFunction"]
    response = aws.client("lambda").invoke(FunctionName=function, Payload=json.dumps(delivered))
    [result] = json.loads(response["Payload"].read())["results"]
    assert result["outcome"] == "waiting", result  # a new quiet period...
    waiter = finished_waiter(aws, result["waiter"])
    assert json.loads(waiter["output"])["run"]["executionName"] == run["name"]  # ...finds the same run
    assert json.loads(waiter["output"])["outcome"] == "identical"
    assert len(run_of(aws, "twice", since)) == 1


def finished_waiter(aws: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    machine = aws.outputs["BatchWaiterStateMachineArn"]
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
    deadline = time.monotonic() + timeout
    while True:
        described = aws.client("stepfunctions").describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"batch waiter {name} still running"
        time.sleep(0.1)


def test_a_multi_file_upload_starts_one_run_at_its_marker(aws):
    s3, bucket = aws.client("s3"), aws.outputs["InputBucketName"]
    since = time.time() - 1
    header, *rows = IRIS.strip().splitlines()
    s3.put_object(
        Bucket=bucket,
        Key="training/shards/pipeline.json",
        # Long enough that only the marker can start this run, however slow the machine.
        Body=json.dumps({**FAST, "approval_mode": "manual", "dataset_quiet_seconds": 6}),
    )
    for i, chunk in enumerate((rows[::2], rows[1::2])):
        s3.put_object(
            Bucket=bucket, Key=f"training/shards/part-{i}/data.csv", Body="\n".join([header, *chunk]) + "\n"
        )
    time.sleep(1)
    machine = aws.outputs["PipelineStateMachineArn"]
    assert [
        e
        for e in aws.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
        if e["name"].startswith("shards")
    ] == []
    s3.put_object(Bucket=bucket, Key="training/shards/_READY", Body=b"")
    [run] = run_of(aws, "shards", since)
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert json.loads(run["input"])["trigger"] == "marker"
    assert json.loads(run["output"])["run"]["data"]["files"] == 2


def test_manual_approval_waits_then_the_approval_deploys_once(aws):
    since = upload(aws, "approve", {**FAST, "approval_mode": "manual"})
    [run] = run_of(aws, "approve", since)
    assert run["status"] == "SUCCEEDED", run.get("cause")
    package_arn = json.loads(run["output"])["registration"]["modelPackageArn"]
    sagemaker = aws.client("sagemaker")
    endpoint = json.loads(run["output"])["run"]["names"]["endpoint"]
    with pytest.raises(sagemaker.exceptions.ClientError):
        sagemaker.describe_endpoint(EndpointName=endpoint)  # nothing deployed before the approval

    sagemaker.update_model_package(ModelPackageArn=package_arn, ModelApprovalStatus="Approved")

    deploy_machine = aws.outputs["DeployStateMachineArn"]
    deadline = time.monotonic() + 120
    while True:
        deployments = [
            e
            for e in aws.client("stepfunctions").list_executions(stateMachineArn=deploy_machine)["executions"]
            if e["name"].startswith(endpoint) and e["status"] != "RUNNING"
        ]
        if deployments or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    [deployment] = deployments
    assert deployment["status"] == "SUCCEEDED"
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert endpoint_tags(aws, described["EndpointArn"])["mlops:model-package-arn"] == package_arn


def test_instance_endpoints_are_updated_blue_green(aws):
    config = {
        **FAST,
        "deploy_mode": "instance",
        "endpoint_instance_count": 2,
        "rollout": "canary",
        "rollout_wait_seconds": 0,
    }
    since = upload(aws, "fleet", config)
    [first] = run_of(aws, "fleet", since)
    assert first["status"] == "SUCCEEDED", first.get("cause")
    since = upload(aws, "fleet", config, IRIS + "\n")
    [second] = [r for r in run_of(aws, "fleet", since) if r["executionArn"] != first["executionArn"]]
    assert second["status"] == "SUCCEEDED", second.get("cause")
    deployment = json.loads(second["output"])["deployment"]
    assert deployment["output"]["action"] == "update"
    states = visited(aws, deployment["executionArn"])
    assert "UpdateEndpointBlueGreen" in states and "UpdateServerlessEndpoint" not in states
    alarms = aws.client("cloudwatch").describe_alarms(AlarmNamePrefix=deployment["output"]["endpointName"])
    assert len(alarms["MetricAlarms"]) == 2


def test_a_wrong_answer_after_an_update_fails_the_run_and_restores_the_serving_model(aws):
    since = upload(aws, "relapse", FAST)
    [first] = run_of(aws, "relapse", since)
    assert first["status"] == "SUCCEEDED", first.get("cause")
    serving = json.loads(first["output"])["deployment"]["output"]
    endpoint = serving["endpointName"]

    aws.faults.fail_api("sagemaker-runtime", "InvokeEndpoint", "ModelError", message="model crashed")
    since = upload(aws, "relapse", FAST, IRIS + "\n")
    [second] = [r for r in run_of(aws, "relapse", since) if r["executionArn"] != first["executionArn"]]

    assert second["status"] == "FAILED" and second["error"] == "SmokeTestError"
    assert (
        f"{endpoint} is going back to its previous endpoint config {serving['endpointConfigName']}"
        in (second["cause"])
    )
    sagemaker = aws.client("sagemaker")
    deadline = time.monotonic() + 30
    while True:
        now = sagemaker.describe_endpoint(EndpointName=endpoint)
        if now["EndpointStatus"] == "InService" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert now["EndpointConfigName"] == serving["endpointConfigName"]
    assert endpoint_tags(aws, now["EndpointArn"])["mlops:model-package-arn"] == serving["modelPackageArn"]
