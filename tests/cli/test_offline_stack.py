"""Every `mlops` command against the deployed stack in the embedded AWS, in both output modes.

One deployment for the module: a dataset that succeeds twice (two approved packages, the endpoint serving
the second), one whose processing job fails, one waiting for manual approval, and a notebook instance.
The command runs in this process (so it reaches the in-process AWS) except where the console script itself
is under test (it then reaches the same AWS through a moto server on a free port).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto.cloudwatch.models import cloudwatch_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from offline import REGION
from offline.demo import fire_schedule
from offline.embedded import EmbeddedAws, list_executions
from offline.stack import DEFAULT_BUILD_DIR
from tests.cli.conftest import Result, run_mlops
from tests.e2e.conftest import receive_notifications, subscribe_queue

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "offline" / "sample_data" / "iris"
STACK = "mlops-local"
RUN_TIMEOUT = 240.0
SETOSA, VIRGINICA = "5.1,3.5,1.4,0.2", "7.7,3.0,6.1,2.3"
GOOD, BAD, MANUAL = "cli-iris", "cli-bad", "cli-manual"
NOTEBOOK = "cli-notebook"
MLOPS = Path(sys.executable).with_name("mlops")


def mlops(*args: str) -> Result:
    return run_mlops("--stack", STACK, *args)


@dataclass
class World:
    aws: EmbeddedAws
    runs: dict[str, str]  # dataset -> name of its run
    follow_bad: Result
    follow_good: Result
    status_at_follow: dict[str, str]
    notifications: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def sagemaker(self) -> Any:
        return self.aws.client("sagemaker")


def _upload(aws: EmbeddedAws, dataset: str, **config: Any) -> None:
    s3, bucket = aws.client("s3"), aws.outputs["InputBucketName"]
    settings = {**json.loads((SAMPLE / "pipeline.json").read_text()), **config}
    s3.put_object(Bucket=bucket, Key=f"training/{dataset}/pipeline.json", Body=json.dumps(settings).encode())
    s3.upload_file(str(SAMPLE / "iris.csv"), bucket, f"training/{dataset}/iris.csv")


def _started(aws: EmbeddedAws, dataset: str, since: float, timeout: float = 120.0) -> list[dict[str, Any]]:
    """The runs of `dataset` started since `since`: a run starts once the dataset's folders are quiet."""
    aws.state.registry.wait_for_async_invocations(timeout=30)
    deadline = time.monotonic() + timeout
    while True:
        found = [
            e
            for e in list_executions(
                aws.client("stepfunctions"), aws.outputs["PipelineStateMachineArn"], since
            )
            if e["name"].startswith(f"{dataset}-")
        ]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found, f"no run of {dataset} started"
    return found


def _wait_all(aws: EmbeddedAws, since: float) -> list[dict[str, Any]]:
    return aws.wait_for_executions(aws.outputs["PipelineStateMachineArn"], 1, RUN_TIMEOUT, since)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    if not (DEFAULT_BUILD_DIR / "template.yaml").is_file():
        pytest.fail("no .aws-sam/build/template.yaml: run `make build` (sam build) before these tests")
    with EmbeddedAws() as aws:
        queue = subscribe_queue(aws, aws.outputs["NotificationTopicArn"], "cli-notifications")
        since = time.time() - 1
        _upload(aws, BAD, target_column="flower_kind")
        _upload(aws, GOOD)
        _upload(aws, MANUAL, approval_mode="manual", deploy_mode="instance")  # serverless is never swept
        [bad] = _started(aws, BAD, since)
        [good] = _started(aws, GOOD, since)
        status_at_follow = {
            "bad": aws.client("stepfunctions").describe_execution(executionArn=bad["executionArn"])["status"],
            "good": aws.client("stepfunctions").describe_execution(executionArn=good["executionArn"])[
                "status"
            ],
        }
        follow_bad = mlops("runs", "follow", bad["name"], "--interval", "0.2")
        follow_good = mlops("--output", "json", "runs", "follow", good["name"], "--interval", "0.2")
        finished = {e["name"]: e for e in _wait_all(aws, since)}
        assert finished[good["name"]]["status"] == "SUCCEEDED", json.loads(follow_good.out).get("failure")
        assert finished[bad["name"]]["status"] == "FAILED"
        [manual] = [e for e in finished.values() if e["name"].startswith(f"{MANUAL}-")]
        assert manual["status"] == "SUCCEEDED", manual
        notifications = receive_notifications(aws, queue, timeout=5)

        # A second approved package of the good dataset (its model, registered again), not deployed yet:
        # rollback goes between the two through the deploy workflow.
        sm = aws.client("sagemaker")
        first = sm.describe_model_package(ModelPackageName=package_arn(GOOD, 1))
        sm.create_model_package(
            ModelPackageGroupName=first["ModelPackageGroupName"],
            InferenceSpecification=first["InferenceSpecification"],
            CustomerMetadataProperties={**first["CustomerMetadataProperties"], "run-id": f"{GOOD}-again"},
            ModelApprovalStatus="Approved",
        )

        aws.client("sagemaker").create_notebook_instance(
            NotebookInstanceName=NOTEBOOK,
            InstanceType="ml.t3.medium",
            RoleArn=aws.outputs["SageMakerExecutionRoleArn"],
        )
        # The heartbeat the notebook's lifecycle script sends: idle for ten minutes.
        aws.client("cloudwatch").put_metric_data(
            Namespace="SageMakerMLOps/CostGuard",
            MetricData=[
                {
                    "MetricName": "NotebookIdleSeconds",
                    "Dimensions": [{"Name": "NotebookInstanceName", "Value": NOTEBOOK}],
                    "Timestamp": datetime.now(UTC),
                    "Value": 600.0,
                    "Unit": "Seconds",
                }
            ],
        )
        yield World(
            aws,
            {BAD: bad["name"], GOOD: good["name"], MANUAL: manual["name"]},
            follow_bad,
            follow_good,
            status_at_follow,
            notifications,
        )


def package_arn(dataset: str, version: int) -> str:
    return f"arn:aws:sagemaker:{REGION}:{DEFAULT_ACCOUNT_ID}:model-package/{STACK}-{dataset}/{version}"


def serving(world: World, endpoint: str) -> str | None:
    described = world.sagemaker().describe_endpoint(EndpointName=endpoint)
    tags = world.sagemaker().list_tags(ResourceArn=described["EndpointArn"])["Tags"]
    return {t["Key"]: t["Value"] for t in tags}.get("mlops:model-package-arn")


# ---------------------------------------------------------------- runs follow / list / show


def test_follow_shows_each_step_of_a_running_failing_run_and_exits_1_with_the_cause(world: World) -> None:
    assert world.status_at_follow["bad"] == "RUNNING"
    result = world.follow_bad
    assert result.code == 1, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith(f"Following {world.runs[BAD]} (dataset {BAD}), running")
    assert any(line.split()[:3] == ["ok", "run", "PrepareRun"] for line in lines), result.out
    assert any(
        line.split()[:2] == ["FAIL", "run"] and line.split()[2].startswith("ProcessData") for line in lines
    ), result.out
    assert f"{world.runs[BAD]} FAILED" in result.out
    assert "cause: ProcessData:" in result.out and "flower_kind" in result.out
    assert f"mlops logs {world.runs[BAD]}" in result.out


def test_follow_in_json_ends_with_the_run_and_exit_0(world: World) -> None:
    assert world.status_at_follow["good"] == "RUNNING"
    answer = world.follow_good.json()
    assert answer["run"] == world.runs[GOOD] and answer["status"] == "SUCCEEDED"
    steps = {s["name"]: s for s in answer["steps"]}
    for name in ("PrepareRun", "ProcessData", "TrainModel", "EvaluateModel", "QualityGate", "RegisterModel"):
        assert steps[name]["status"] == "succeeded" and steps[name]["durationSeconds"] >= 0
    assert steps["TrainModel"]["job"]["kind"] == "training"
    assert answer["childExecutions"] and ":execution:mlops-local-deploy:" in answer["childExecutions"][0]


def test_runs_list_in_both_modes(world: World) -> None:
    listed = {r["run"]: r for r in mlops("-o", "json", "runs", "list").json()}
    assert listed[world.runs[BAD]]["status"] == "FAILED"
    assert listed[world.runs[BAD]]["stepReached"] == "ProcessData"
    assert listed[world.runs[GOOD]]["outcome"] == "deployed" and listed[world.runs[GOOD]]["dataset"] == GOOD
    assert listed[world.runs[MANUAL]]["outcome"] == "pending_approval"
    assert listed[world.runs[MANUAL]]["stepReached"] == "RegisterModel"
    assert set(listed[world.runs[GOOD]]) == {
        "run", "dataset", "status", "outcome", "stepReached", "startedAt", "stoppedAt", "durationSeconds",
        "executionArn",
    }  # fmt: skip

    only_bad = mlops("-o", "json", "runs", "list", "--dataset", BAD).json()
    assert [r["run"] for r in only_bad] == [world.runs[BAD]]
    failed = mlops("-o", "json", "runs", "list", "--status", "failed").json()
    assert {r["status"] for r in failed} == {"FAILED"}

    table = mlops("runs", "list")
    assert table.code == 0
    header, *rows = table.out.splitlines()
    assert header.split() == ["run", "dataset", "step", "reached", "outcome", "duration", "started"]
    row = next(r for r in rows if r.startswith(world.runs[BAD]))
    assert row.split()[1:4] == [BAD, "ProcessData", "failed"]


def test_runs_show_by_name_and_by_dataset(world: World) -> None:
    shown = mlops("-o", "json", "runs", "show", GOOD).json()  # a dataset: its newest run
    assert shown["run"] == world.runs[GOOD]
    assert shown["modelPackageArn"] == package_arn(GOOD, 1)
    assert shown["endpointName"] == f"{STACK}-{GOOD}"
    assert shown["metrics"]["accuracy"] > 0.8
    assert shown["failure"] is None

    failed = mlops("-o", "json", "runs", "show", world.runs[BAD]).json()
    assert failed["failure"]["step"] == "ProcessData"
    assert "flower_kind" in failed["failure"]["cause"]

    table = mlops("runs", "show", world.runs[BAD])
    assert table.code == 0
    assert f"dataset: {BAD}" in " ".join(table.out.split())
    assert "Failed at ProcessData" in table.out
    assert f"logs: mlops logs {world.runs[BAD]}" in table.out


# ---------------------------------------------------------------- status


def test_status_in_json(world: World) -> None:
    answer = mlops("-o", "json", "status", "--runs", "10").json()
    assert answer["stack"]["name"] == STACK and answer["stack"]["status"] == "CREATE_COMPLETE"
    assert answer["stack"]["parameters"]["ApprovalMode"] == "auto"
    runs = {r["run"]: r for r in answer["runs"]}
    assert runs[world.runs[BAD]]["outcome"] == "failed"
    endpoints = {e["endpointName"]: e for e in answer["endpoints"]}
    assert endpoints[f"{STACK}-{GOOD}"]["status"] == "InService"
    assert (
        endpoints[f"{STACK}-{GOOD}"]["modelPackageArn"]
        == serving(world, f"{STACK}-{GOOD}")
        == package_arn(GOOD, 1)
    )
    assert endpoints[f"{STACK}-{GOOD}"]["modelPackageVersion"] == 1
    [pending] = [p for p in answer["pendingApprovals"] if p["dataset"] == MANUAL]
    assert pending["approvalStatus"] == "PendingManualApproval" and pending["runId"] == world.runs[MANUAL]
    [notebook] = [n for n in answer["notebooks"] if n["notebookInstanceName"] == NOTEBOOK]
    assert notebook["status"] == "InService" and 9.0 <= notebook["idleMinutes"] <= 30.0
    assert set(answer["costGuard"]) >= {"lastSweeps", "estimatedSavingUsd", "sweeps"}


def test_status_as_tables(world: World) -> None:
    result = mlops("status")
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith(f"stack:      {STACK} (CREATE_COMPLETE, {REGION})")
    for title in ("Recent runs", "Endpoints", "Pending approval", "Notebooks", "Cost guard"):
        assert title in out
    [endpoint_row] = [
        line.split() for line in out.splitlines() if line.strip().startswith(f"{STACK}-{GOOD} ")
    ]
    assert endpoint_row[:4] == [f"{STACK}-{GOOD}", "InService", f"{STACK}-{GOOD}", "v1"]
    assert MANUAL in out and NOTEBOOK in out


# ---------------------------------------------------------------- logs


def test_logs_of_a_failed_job_show_the_jobs_own_error_line(world: World) -> None:
    answer = mlops("-o", "json", "logs", world.runs[BAD]).json()
    assert answer["steps"] == ["ProcessData"]
    [job] = answer["jobs"]
    assert job["job"]["kind"] == "processing" and job["job"]["logGroup"] == "/aws/sagemaker/ProcessingJobs"
    # The recipe's own message, as the job printed it (not the pipeline's summary of it).
    assert any("DatasetError" in line and "flower_kind" in line for line in job["lines"]), job["lines"]
    functions = {line["function"].removeprefix(f"{STACK}-").rsplit("-", 1)[0] for line in answer["lambda"]}
    assert {"StartRunFunction", "PrepareRunFunction", "NotifyFunction"} <= functions, functions
    assert any(line["message"].startswith("failure notified") for line in answer["lambda"])

    table = mlops("logs", world.runs[BAD])
    assert table.code == 0
    assert "ProcessData: processing job" in table.out
    assert "flower_kind" in table.out
    assert f"Lambda log lines of {world.runs[BAD]}" in table.out


def test_logs_of_a_chosen_step(world: World) -> None:
    answer = mlops("-o", "json", "logs", world.runs[GOOD], "--step", "trainmodel").json()
    [job] = answer["jobs"]
    assert job["step"] == "TrainModel" and job["job"]["kind"] == "training"
    assert any(line.startswith("validation:accuracy=") for line in job["lines"])
    unknown = mlops("logs", world.runs[GOOD], "--step", "Deploy-it")
    assert unknown.code == 2 and "has no step 'Deploy-it'" in unknown.error_line


def test_the_failure_notification_names_the_logs_command_and_console_links(world: World) -> None:
    [failed] = [json.loads(n["Message"]) for n in world.notifications if world.runs[BAD] in n["Message"]]
    assert (
        failed["logsCommand"]
        == f"mlops --stack {STACK} --region {REGION} logs {world.runs[BAD]} --step ProcessData"
    )
    assert failed["consoleLinks"]["jobPage"].endswith(
        f"#/processing-jobs/{failed['consoleLinks']['jobPage'].rsplit('/', 1)[-1]}"
    )
    assert world.runs[BAD] in failed["consoleLinks"]["execution"]
    assert "ProcessingJobs" in failed["consoleLinks"]["jobLogStreams"]


# ---------------------------------------------------------------- invoke


def test_invoke_a_file_and_json(world: World, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(f"{SETOSA}\n{VIRGINICA}\n")
    endpoint = f"{STACK}-{GOOD}"
    answer = mlops("-o", "json", "invoke", endpoint, "--file", str(rows)).json()
    assert [p["label"] for p in answer["predictions"]] == ["setosa", "virginica"]

    table = mlops("invoke", endpoint, "--json", json.dumps({"instances": [[7.7, 3.0, 6.1, 2.3]]}))
    assert table.code == 0, table.err
    header, first = table.out.splitlines()[:2]
    assert header.split()[:2] == ["row", "label"]
    assert first.split()[:2] == ["1", "virginica"]


# ---------------------------------------------------------------- approve, reject, rollback


@pytest.fixture(scope="module")
def second_pending(world: World) -> str:
    """Another package pending approval in the manual dataset's group (to reject)."""
    sm = world.sagemaker()
    first = sm.describe_model_package(ModelPackageName=package_arn(MANUAL, 1))
    properties = {**first["CustomerMetadataProperties"], "run-id": "cli-manual-second"}
    return sm.create_model_package(
        ModelPackageGroupName=first["ModelPackageGroupName"],
        InferenceSpecification=first["InferenceSpecification"],
        CustomerMetadataProperties=properties,
        ModelApprovalStatus="PendingManualApproval",
    )["ModelPackageArn"]


def test_reject_by_arn_and_approve_by_dataset_then_it_deploys(world: World, second_pending: str) -> None:
    rejected = mlops("-o", "json", "reject", second_pending, "--reason", "worse on last week's data").json()
    assert rejected["approvalStatus"] == "Rejected" and rejected["version"] == 2
    again = mlops("reject", second_pending, "--reason", "again")
    assert again.code == 2 and "is Rejected, not PendingManualApproval" in again.error_line

    since = time.time() - 0.5
    approved = mlops("approve", MANUAL, "--note", "checked by hand")
    assert approved.code == 0, approved.err
    assert approved.out.startswith(f"approved: {package_arn(MANUAL, 1)} (dataset {MANUAL}, version 1)")
    described = world.sagemaker().describe_model_package(ModelPackageName=package_arn(MANUAL, 1))
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "checked by hand"
    # The approval rule starts the deploy workflow: the endpoint serves the approved package.
    world.aws.state.registry.wait_for_async_invocations(timeout=30)
    [deploy] = world.aws.wait_for_executions(
        world.aws.outputs["DeployStateMachineArn"], 1, RUN_TIMEOUT, since
    )
    assert deploy["status"] == "SUCCEEDED", deploy
    assert serving(world, f"{STACK}-{MANUAL}") == package_arn(MANUAL, 1)
    world.extra["manual_deployed"] = True

    nothing = mlops("approve", MANUAL)
    assert (
        nothing.code == 2
        and f"dataset {MANUAL} has no PendingManualApproval model package" in nothing.error_line
    )


def test_rollback_serves_the_earlier_package_through_the_deploy_workflow(world: World) -> None:
    endpoint = f"{STACK}-{GOOD}"
    assert serving(world, endpoint) == package_arn(GOOD, 1)
    config_v1 = world.sagemaker().describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    nothing_older = mlops("rollback", GOOD)
    assert (
        nothing_older.code == 2
        and "no approved package of cli-iris older than the serving one" in nothing_older.error_line
    )

    # Version 2 first (a deployment named by version), then back to the one before it.
    forward = mlops("-o", "json", "rollback", GOOD, "--to", "2", "--interval", "0.2").json()
    assert forward["status"] == "SUCCEEDED", forward
    assert (forward["fromModelPackageArn"], forward["toModelPackageArn"]) == (
        package_arn(GOOD, 1),
        package_arn(GOOD, 2),
    )
    assert ":execution:mlops-local-deploy:rollback-" in forward["executionArn"]
    assert forward["endpoint"]["modelPackageVersion"] == 2
    assert serving(world, endpoint) == package_arn(GOOD, 2)

    back = mlops("rollback", GOOD, "--interval", "0.2")

    assert back.code == 0, back.err
    assert f"rolling {endpoint} back from {STACK}-{GOOD} v2 to {STACK}-{GOOD} v1" in back.out
    assert f"{endpoint} now serves {STACK}-{GOOD} v1 (InService)" in back.out
    assert serving(world, endpoint) == package_arn(GOOD, 1)
    assert world.sagemaker().describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] != config_v1
    # It went through the deploy machine's own steps, smoke test included, and the endpoint answers.
    [execution] = [
        line.split()[-1].strip("()")
        for line in back.out.splitlines()
        if "through the deploy workflow" in line
    ]
    deploy_arn = (
        world.aws.outputs["DeployStateMachineArn"].replace(":stateMachine:", ":execution:") + ":" + execution
    )
    history = world.aws.client("stepfunctions").get_execution_history(executionArn=deploy_arn)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"] == "TaskStateEntered"]
    assert "PrepareDeployment" in entered and "SmokeTest" in entered
    answer = mlops("-o", "json", "invoke", endpoint, "--json", '{"instances": [[5.1, 3.5, 1.4, 0.2]]}').json()
    assert answer["predictions"][0]["label"] == "setosa"

    same = mlops("rollback", GOOD, "--to", "1")
    assert same.code == 2 and "already serves version 1" in same.error_line
    missing = mlops("rollback", GOOD, "--to", "9")
    assert missing.code == 2 and "has no package version 9 (versions: 2, 1)" in missing.error_line


# ---------------------------------------------------------------- cost guard: savings and restore


def test_savings_and_restore_of_an_endpoint_the_cost_guard_deleted(world: World) -> None:
    if not world.extra.get("manual_deployed"):
        pytest.skip("needs the approved deployment of the approval test")
    endpoint = f"{STACK}-{MANUAL}"
    fake = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].endpoints[endpoint]
    # Old and idle: created three days ago, its invocations (the smoke test's) as old (moto keeps naive UTC).
    fake.creation_time = fake.last_modified_time = fake.creation_time - timedelta(days=3)
    for datum in cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION].metric_data:
        if {"Name": "EndpointName", "Value": endpoint} in [
            {"Name": d.name, "Value": d.value} for d in datum.dimensions
        ]:
            datum.timestamp -= timedelta(days=3)
    swept = fire_schedule(
        world.aws.client, world.aws.outputs["EndpointSweeperFunctionName"], None, dry_run=False
    )
    assert [a["name"] for a in swept["acted_on"] if a["action"] == "deleted"] == [endpoint]

    saved = mlops("-o", "json", "savings", "--since", "1h").json()
    [sweep] = [s for s in saved["sweeps"] if s["kind"] == "endpoints"]
    assert sweep["counts"]["deleted"] == 1 and sweep["actedOn"][0]["name"] == endpoint
    assert sweep["estimatedHourlySavingUsd"] == swept["estimated_hourly_saving_usd"]
    assert saved["lastSweeps"]["endpoints"]["startedAt"] == sweep["startedAt"]
    assert saved["metrics"]["Deleted"] == 1.0  # from the sweeper's embedded metrics
    table = mlops("savings", "--since", "2h")
    assert table.code == 0 and endpoint in table.out and "deleted" in table.out

    unknown = mlops("status")
    assert unknown.code == 0 and "endpoints" in unknown.out

    restored = mlops("-o", "json", "restore", endpoint).json()
    assert restored["status"] == "restoring" and restored["endpoint_name"] == endpoint
    assert world.sagemaker().describe_endpoint(EndpointName=endpoint)["EndpointStatus"] in {
        "Creating",
        "InService",
    }
    refused = mlops("restore", f"{STACK}-never-deleted")
    assert refused.code == 2
    assert refused.error_line.startswith(f"mlops: error: restore of {STACK}-never-deleted refused:")


# ---------------------------------------------------------------- notebooks


def test_notebooks_list_url_stop_start(world: World) -> None:
    [listed] = [
        n for n in mlops("-o", "json", "notebooks", "list").json() if n["notebookInstanceName"] == NOTEBOOK
    ]
    assert listed["status"] == "InService" and listed["idleMinutes"] >= 9.0
    table = mlops("notebooks", "list")
    assert table.code == 0 and NOTEBOOK in table.out and "InService" in table.out

    url = mlops("-o", "json", "notebooks", "url", NOTEBOOK).json()
    assert url["notebookInstanceName"] == NOTEBOOK and url["url"].startswith("https://")
    assert mlops("notebooks", "url", NOTEBOOK).out.strip() == url["url"]

    stopped = mlops("-o", "json", "notebooks", "stop", NOTEBOOK).json()
    assert stopped["before"] == "InService" and stopped["status"] in {"Stopping", "Stopped"}
    sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].notebook_instances[NOTEBOOK].status = "Stopped"
    again = mlops("notebooks", "stop", NOTEBOOK)
    assert (
        again.code == 2
        and f"{NOTEBOOK} is Stopped: it can be stopped only when InService" in again.error_line
    )
    started = mlops("notebooks", "start", NOTEBOOK)
    assert started.code == 0 and started.out.startswith(f"{NOTEBOOK}: Stopped -> ")
    no_own = mlops("notebooks", "url")
    assert no_own.code == 2 and "has no notebook (CreateNotebook=false)" in no_own.error_line


# ---------------------------------------------------------------- images, redrive


def test_images_in_both_modes() -> None:
    rows = mlops("-o", "json", "images", "--framework", "sklearn", "--region", "eu-west-1").json()
    assert {row["version"] for row in rows} >= {"1.4-2-py312", "1.2-1"}
    assert [row["version"] for row in rows if row["default"]] == ["1.4-2-py312"]
    for row in rows:
        assert row["framework"] == "sklearn" and row["region"] == "eu-west-1"
        assert row["imageUri"] == (
            f"141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:{row['tag']}"
        )
    table = mlops("images")
    lines = table.out.splitlines()
    assert lines[0].split() == ["framework", "region", "version", "image"]
    assert len({line.split()[1] for line in lines[1:] if line.strip()}) >= 37
    assert any(line.split()[:2] == ["sklearn", "cn-north-1"] and "amazonaws.com.cn" in line for line in lines)
    bad = mlops("images", "--region", "mars-north-1")
    assert bad.code == 2 and "no default image in mars-north-1" in bad.error_line
    unknown = mlops("images", "--framework", "xgboost")
    assert unknown.code == 2 and "unknown framework" in unknown.error_line


@pytest.mark.usefixtures("world")
def test_redrive_dry_run_reads_the_stacks_trigger_dead_letter_queue() -> None:
    result = mlops("redrive", "--dry-run")
    assert result.code == 0, result
    assert result.out.startswith("Trigger dead-letter queue (dry run)"), result.out


# ---------------------------------------------------------------- bad input: one line, exit code 2


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("runs", "show", "no-such-run"), "no run 'no-such-run' in stack mlops-local"),
        (("logs", "no-such-run"), "no run 'no-such-run' in stack mlops-local"),
        (("invoke", "no-such-endpoint", "--json", "{}"), "no endpoint 'no-such-endpoint'"),
        (("invoke", f"{STACK}-{GOOD}", "--json", "{not json"), "--json is not valid JSON"),
        (("--stack", "no-such-stack", "status"), "stack no-such-stack not found in region us-east-1"),
        (("rollback", "no-such-dataset"), "no model packages for dataset 'no-such-dataset'"),
        (("savings", "--since", "a week"), "--since 'a week': give a number and a unit"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(args: tuple[str, ...], expected: str) -> None:
    result = mlops(*args)
    assert result.code == 2, result
    assert expected in result.error_line
    assert "Traceback" not in result.err and result.out == ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_console_script_against_the_stack_over_http(world: World) -> None:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        started = time.monotonic()
        done = subprocess.run(
            [str(MLOPS), "--endpoint-url", f"http://127.0.0.1:{port}", "--stack", STACK, "-o", "json",
             "status"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert {e["endpointName"] for e in answer["endpoints"]} >= {f"{STACK}-{GOOD}"}
    print(f"mlops status over HTTP: {seconds:.2f}s")


def test_local_stack_down_and_no_credentials_give_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOCAL_AWS_PORT": str(_free_port()),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    down = subprocess.run(
        [str(MLOPS), "--local", "status"], capture_output=True, text=True, env=env, check=False
    )
    assert down.returncode == 2 and down.stdout == ""
    assert down.stderr.strip().splitlines() == [
        f"mlops: error: the offline stack is not running (nothing answers on http://127.0.0.1:{env['LOCAL_AWS_PORT']}):"
        " start it with `make local-up` (LOCAL_AWS_PORT sets its port)"
    ]
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
    ):
        env.pop(name, None)
    nocreds = subprocess.run(
        [str(MLOPS), "--stack", "any", "--region", "eu-west-1", "runs", "list"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert nocreds.returncode == 2
    [line] = nocreds.stderr.strip().splitlines()
    assert line.startswith("mlops: error: no AWS credentials: pass --profile")


def test_follow_without_a_run_follows_the_newest_running_one(world: World) -> None:
    # Last in the module: the run of a dataset of its own, started after every other run has ended.
    newest = "cli-newest"
    since = time.time() - 1
    _upload(world.aws, newest)
    [run] = _started(world.aws, newest, since)
    others = [
        e
        for e in list_executions(
            world.aws.client("stepfunctions"), world.aws.outputs["PipelineStateMachineArn"]
        )
        if e["status"] == "RUNNING" and e["name"] != run["name"]
    ]
    assert others == []  # so "the newest running run" can only be this one

    result = mlops("runs", "follow", "--interval", "0.2")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith(f"Following {run['name']} (dataset {newest}), ")
    assert any(line.split()[:3] == ["ok", "run", "TrainModel"] for line in lines), result.out
    assert lines[-1].startswith(f"{run['name']} SUCCEEDED (deployed) in ")
