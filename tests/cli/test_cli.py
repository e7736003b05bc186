"""The `mlops` command without a stack: startup cost, target resolution, history parsing, argument errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops_cli import runs
from mlops_cli.context import LOCAL_STACK, Target
from mlops_cli.errors import CliError
from mlops_cli.main import parse_since
from tests.cli.conftest import run_mlops

ROOT = Path(__file__).resolve().parents[2]


def test_help_imports_neither_boto3_nor_rich() -> None:
    probe = (
        "import sys\n"
        "from mlops_cli.main import run\n"
        "codes = []\n"
        "run(['--help'], standalone=codes.append)\n"
        "heavy = {'boto3', 'botocore', 'rich', 'mlops_common'}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(codes, heavy, file=sys.stderr)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    print(f"mlops --help in a fresh interpreter: {time.monotonic() - started:.2f}s")
    assert done.stderr.strip() == "[0] []"
    assert "Commands:" in done.stdout and "rollback" in done.stdout


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("mlops")
    assert script.is_file(), "run `make venv`: it installs the mlops console script"
    done = subprocess.run([str(script), "runs", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "follow" in done.stdout


def _resolve(**overrides: Any) -> Target:
    options: dict[str, Any] = {
        "stack": None,
        "config_env": "default",
        "profile": None,
        "region": None,
        "endpoint_url": None,
        "local": False,
    }
    return Target.resolve(**{**options, **overrides})


def test_the_stack_comes_from_samconfig_of_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "docs")  # a sub-folder: samconfig.toml is found in a parent
    monkeypatch.delenv("MLOPS_STACK", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert _resolve().stack == "sagemaker-mlops"
    prod = _resolve(config_env="prod")
    assert (prod.stack, prod.region) == ("sagemaker-mlops-prod", "us-east-1")
    monkeypatch.setenv("MLOPS_STACK", "from-env")
    assert _resolve().stack == "from-env"
    assert _resolve(stack="given").stack == "given"
    with pytest.raises(CliError, match=r"has no \[staging\] environment \(it has: .*default.*prod"):
        _resolve(config_env="staging")


def test_without_samconfig_the_stack_must_be_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_STACK", raising=False)
    with pytest.raises(CliError, match="no stack named: pass --stack NAME"):
        _resolve()


def test_local_means_the_offline_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_AWS_PORT", "4777")
    local = _resolve(local=True)
    assert (local.stack, local.endpoint_url, local.region) == (
        LOCAL_STACK,
        "http://127.0.0.1:4777",
        "us-east-1",
    )
    with pytest.raises(CliError, match="give one of them"):
        _resolve(local=True, endpoint_url="http://x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("36h", timedelta(hours=36)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_since(text: str, expected: timedelta) -> None:
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["7", "d", "-1d", "0h", "7y", "1.5d"])
def test_since_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(CliError, match="give a number and a unit"):
        parse_since(text)


def test_argument_errors_are_click_usage_errors() -> None:
    result = run_mlops("--stack", "s", "invoke", "endpoint")
    assert result.code == 2 and "give the request as --file rows.csv or --json" in result.error_line
    result = run_mlops("--stack", "s", "no-such-command")
    assert result.code == 2 and "No such command 'no-such-command'" in result.err


# ---------------------------------------------------------------- reading a history


def _event(index: int, kind: str, seconds: float, **details: Any) -> dict[str, Any]:
    return {"id": index, "type": kind, "timestamp": T0 + timedelta(seconds=seconds), **details}


T0 = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
LAMBDA = "arn:aws:lambda:us-east-1:1:function:stack-PrepareRunFunction-ABC"
JOB_CAUSE = json.dumps(
    {
        "ProcessingJobName": "stack-iris-1-proc-a1",
        "ProcessingJobStatus": "Failed",
        "FailureReason": "bad rows",
    }
)
FAILED_RUN = [
    _event(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
    _event(2, "TaskStateEntered", 0, stateEnteredEventDetails={"name": "PrepareRun"}),
    _event(3, "LambdaFunctionScheduled", 0.1, lambdaFunctionScheduledEventDetails={"resource": LAMBDA}),
    _event(4, "LambdaFunctionSucceeded", 1.5, lambdaFunctionSucceededEventDetails={"output": "{}"}),
    _event(5, "TaskStateExited", 2, stateExitedEventDetails={"name": "PrepareRun"}),
    _event(6, "TaskStateEntered", 2, stateEnteredEventDetails={"name": "ProcessData"}),
    _event(
        7,
        "TaskScheduled",
        2.1,
        taskScheduledEventDetails={
            "resourceType": "sagemaker",
            "resource": "createProcessingJob.sync",
            "parameters": json.dumps({"ProcessingJobName": "stack-iris-1-proc-a1"}),
        },
    ),
    _event(8, "TaskFailed", 9, taskFailedEventDetails={"error": "States.TaskFailed", "cause": JOB_CAUSE}),
    _event(9, "TaskStateExited", 9, stateExitedEventDetails={"name": "ProcessData"}),
    _event(10, "PassStateEntered", 9, stateEnteredEventDetails={"name": "RecordProcessDataFailure"}),
    _event(11, "TaskStateEntered", 9, stateEnteredEventDetails={"name": "NotifyFailure"}),
    _event(12, "TaskStateExited", 10, stateExitedEventDetails={"name": "NotifyFailure"}),
    _event(
        13,
        "ExecutionFailed",
        10,
        executionFailedEventDetails={
            "error": "ProcessingJobFailed",
            "cause": "ProcessData: Processing job stack-iris-1-proc-a1 Failed: bad rows",
        },
    ),
]


def test_a_failed_runs_history_gives_its_steps_jobs_and_cause() -> None:
    steps, failure, children = runs.parse_history(list(reversed(FAILED_RUN)))  # any order: sorted by id
    assert [(s.name, s.status) for s in steps] == [
        ("PrepareRun", "succeeded"),
        ("ProcessData", "failed"),
        ("NotifyFailure", "succeeded"),
    ]
    prepare, process, _ = steps
    assert prepare.function == "stack-PrepareRunFunction-ABC" and prepare.seconds == 2.0
    assert process.job == runs.Job("processing", "stack-iris-1-proc-a1", "/aws/sagemaker/ProcessingJobs")
    assert process.cause == "stack-iris-1-proc-a1 Failed: bad rows" and process.seconds == 7.0
    # The root step, with the run's own words for the cause.
    assert failure == runs.Failure(
        "ProcessData", "ProcessingJobFailed", "Processing job stack-iris-1-proc-a1 Failed: bad rows"
    )
    assert children == []
    run = runs.Run(
        "r", "arn", "FAILED", T0, T0 + timedelta(seconds=10), {"dataset": "iris"}, None, steps, failure
    )
    assert run.step_reached == "ProcessData" and run.outcome == "failed"


def test_a_polling_loop_counts_visits_and_a_nested_execution_is_found() -> None:
    deploy = "arn:aws:states:us-east-1:1:execution:stack-deploy:d-1"
    events = [
        _event(1, "TaskStateEntered", 0, stateEnteredEventDetails={"name": "DescribeEndpoint"}),
        _event(2, "TaskStateExited", 1, stateExitedEventDetails={"name": "DescribeEndpoint"}),
        _event(3, "TaskStateEntered", 5, stateEnteredEventDetails={"name": "DescribeEndpoint"}),
        _event(4, "TaskStateExited", 7, stateExitedEventDetails={"name": "DescribeEndpoint"}),
        _event(5, "TaskStateEntered", 7, stateEnteredEventDetails={"name": "DeployModel"}),
        _event(
            6, "TaskSubmitted", 7, taskSubmittedEventDetails={"output": json.dumps({"ExecutionArn": deploy})}
        ),
    ]
    steps, failure, children = runs.parse_history(events)
    describe, deploying = steps
    assert (describe.visits, describe.seconds, describe.status) == (2, 3.0, "succeeded")
    assert deploying.status == "running"
    assert failure is None and children == [deploy]


def test_outcome_of_a_succeeded_run_is_the_notifications() -> None:
    output = {"notification": {"outcome": "pending_approval", "modelPackageArn": "arn:p/1"}}
    run = runs.Run("r", "arn", "SUCCEEDED", T0, T0, {}, output, [runs.Step("RegisterModel")])
    assert run.outcome == "pending_approval"
    assert run.to_json()["modelPackageArn"] == "arn:p/1"


def test_follow_reports_a_polling_step_once_when_the_run_moves_past_it() -> None:
    loop = [
        _event(1, "TaskStateEntered", 0, stateEnteredEventDetails={"name": "DescribeEndpoint"}),
        _event(2, "TaskStateExited", 1, stateExitedEventDetails={"name": "DescribeEndpoint"}),
        _event(3, "WaitStateEntered", 1, stateEnteredEventDetails={"name": "WaitForEndpoint"}),
        _event(4, "TaskStateEntered", 5, stateEnteredEventDetails={"name": "DescribeEndpoint"}),
        _event(5, "TaskStateExited", 7, stateExitedEventDetails={"name": "DescribeEndpoint"}),
    ]
    progress = runs.Progress()

    def seen(events: list[dict[str, Any]], status: str = "RUNNING") -> list[tuple[str, int, float]]:
        steps, _, _ = runs.parse_history(events)
        run = runs.Run("d", "arn:d", status, T0, None, {}, None, steps)
        return [(step.name, step.visits, step.seconds) for _, _, step in progress.lines("deploy", run)]

    assert seen(loop[:3]) == []  # waiting between two checks: not over yet
    assert seen(loop) == []
    smoke = _event(6, "TaskStateEntered", 7, stateEnteredEventDetails={"name": "SmokeTest"})
    assert seen([*loop, smoke]) == [("DescribeEndpoint", 2, 3.0)]
    done = _event(7, "TaskStateExited", 8, stateExitedEventDetails={"name": "SmokeTest"})
    assert seen([*loop, smoke, done], "SUCCEEDED") == [("SmokeTest", 1, 1.0)]


def test_a_stage_names_its_endpoint_and_a_single_stage_stack_refuses_one() -> None:
    from mlops_cli.deployments import stage_endpoint

    assert stage_endpoint("ml-iris--staging", "prod") == "ml-iris"
    assert stage_endpoint("ml-iris--staging", "staging") == "ml-iris--staging"
    assert stage_endpoint("ml-iris--staging", None) == "ml-iris--staging"
    assert stage_endpoint("ml-iris", None) == "ml-iris"
    with pytest.raises(CliError, match=r"ml-iris has no stages \(Stages=single\): leave out --stage"):
        stage_endpoint("ml-iris", "prod")
