"""Static checks over the pipeline's ASL: structure, substitutions, retries, fresh job names per attempt."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.static import validate_asl

ROOT = Path(__file__).resolve().parents[3]
DEFINITIONS = ["statemachines/pipeline.asl.json", "statemachines/deploy.asl.json"]
THROTTLING = {
    "ThrottlingException",
    "SageMaker.ThrottlingException",
    "Lambda.TooManyRequestsException",
    "StepFunctions.ThrottlingException",
}


def states_of(path: str) -> dict:
    return json.loads((ROOT / path).read_text())["States"]


@pytest.mark.parametrize("path", DEFINITIONS)
def test_structure_substitutions_and_syntax(path: str):
    assert validate_asl.check_file(ROOT / path, validate_asl.template_substitutions()) == []


@pytest.mark.parametrize("path", DEFINITIONS)
def test_every_task_retries_throttling_with_backoff_and_catches_everything(path: str):
    for name, state in states_of(path).items():
        if state["Type"] != "Task":
            continue
        retried = {error for retry in state["Retry"] for error in retry["ErrorEquals"]}
        assert retried & THROTTLING, f"{name} does not retry throttling"
        assert all(retry.get("BackoffRate", 1) > 1 for retry in state["Retry"]), name
        assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name


def test_every_catch_records_its_step_before_notifying():
    states = states_of("statemachines/pipeline.asl.json")
    for name, state in states.items():
        for catcher in state.get("Catch", []):
            target = states[catcher["Next"]]
            if target["Type"] == "Pass":
                assert target["ResultPath"] == "$.failedStep" and target["Next"] == "NotifyFailure", name


NAME_OF_CREATED = {
    "createProcessingJob": "ProcessingJobName.$",
    "createTrainingJob": "TrainingJobName.$",
    "createModel": "ModelName.$",
    "createEndpointConfig": "EndpointConfigName.$",
    "startExecution": "Name.$",
}


def test_created_resources_get_a_fresh_name_on_every_attempt():
    checked = 0
    for path in DEFINITIONS:
        for name, state in states_of(path).items():
            resource = state.get("Resource", "")
            action = resource.split(":::")[-1].split(":")[-1].split(".")[0] if ":::" in resource else ""
            if resource.endswith(".sync:2"):
                action = resource.split(":::")[-1].split(":")[1].split(".")[0]
            if action in NAME_OF_CREATED:
                assert "States.UUID()" in state["Parameters"][NAME_OF_CREATED[action]], (
                    f"{name} reuses a name on retry"
                )
                checked += 1
    assert checked == 7


def test_a_stopped_or_failed_job_cannot_reach_the_next_step():
    states = states_of("statemachines/pipeline.asl.json")
    for check, status in (
        ("CheckProcessData", "ProcessingJobStatus"),
        ("CheckTrainModel", "TrainingJobStatus"),
        ("CheckEvaluateModel", "ProcessingJobStatus"),
    ):
        [choice] = states[check]["Choices"]
        assert choice["Variable"].endswith(status) and choice["StringEquals"] == "Completed"
        assert states[check]["Default"].startswith("Record")


def test_the_failure_path_ends_in_a_fail_state_with_the_notified_cause():
    states = states_of("statemachines/pipeline.asl.json")
    assert states["NotifyFailure"]["Next"] == "RunFailed"
    assert states["RunFailed"] == {
        "Type": "Fail",
        "ErrorPath": "$.notification.error",
        "CausePath": "$.notification.cause",
    }


def test_the_deploy_wait_loop_is_bounded():
    states = states_of("statemachines/deploy.asl.json")
    choices = states["EndpointReady?"]["Choices"]
    assert any(c.get("NumericGreaterThanEqualsPath") == "$.deploy.maxPolls" for c in choices)
    assert states["WaitForEndpoint"]["SecondsPath"] == "$.deploy.waitSeconds"
    assert "DeploymentConfig.$" not in states["UpdateServerlessEndpoint"]["Parameters"]


def test_substitutions_use_only_resources_of_the_template():
    template = (ROOT / "template.yaml").read_text()
    for path in DEFINITIONS:
        for placeholder in set(re.findall(r"\$\{(\w+)\}", (ROOT / path).read_text())):
            assert f"{placeholder}:" in template, placeholder
