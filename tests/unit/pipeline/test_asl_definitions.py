"""Static checks over the pipeline's ASL: structure, substitutions, retries, fresh job names per attempt."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.static import validate_asl

ROOT = Path(__file__).resolve().parents[3]
DEFINITIONS = ["statemachines/pipeline.asl.json", "statemachines/deploy.asl.json"]
# What each integration really raises (Step Functions developer guide: "Handling errors", the SageMaker and
# Step Functions optimized integrations, AWS SDK integrations), plus the errors our own states raise.
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
}
RAISED_BY = {
    "lambda": LAMBDA_ERRORS | {"EndpointBusyError"},  # PrepareDeployment: the endpoint is changing
    # Optimized integration: modelled errors by name; throttling, validation and internal errors are all
    # SageMaker.AmazonSageMakerException and never retried by name (the branch's Choice reads the Cause).
    "sagemaker": {"SageMaker.ResourceLimitExceededException"},
    # aws-sdk: unmodelled errors (throttling too) are SageMaker.SageMakerException.
    "aws-sdk:sagemaker": {"SageMaker.SageMakerException"},
    "states": {"StepFunctions.ExecutionLimitExceeded"},
    "parallel": {"TransientSageMakerError"},  # raised by the branch's Fail state for a transient error
}


def integration(state: dict) -> str:
    if state["Type"] == "Parallel":
        return "parallel"
    resource = state["Resource"]
    if resource.startswith("${"):
        return "lambda"
    if ":::aws-sdk:" in resource:
        return "aws-sdk:" + resource.split(":::aws-sdk:")[1].split(":")[0]
    return resource.split(":::")[1].split(":")[0]


def all_states(path: str) -> dict:
    """Every state of the definition, including those inside Parallel branches."""
    found = {}
    pending = [json.loads((ROOT / path).read_text())]
    while pending:
        holder = pending.pop()
        for name, state in holder["States"].items():
            found[name] = state
            pending += state.get("Branches", [])
    return found


def states_of(path: str) -> dict:
    return json.loads((ROOT / path).read_text())["States"]


@pytest.mark.parametrize("path", DEFINITIONS)
def test_structure_substitutions_and_syntax(path: str):
    assert validate_asl.check_file(ROOT / path, validate_asl.template_substitutions()) == []


@pytest.mark.parametrize("path", [*DEFINITIONS, "statemachines/batch.asl.json"])
def test_every_retry_names_only_errors_its_integration_raises(path: str):
    checked = 0
    for name, state in all_states(path).items():
        if state["Type"] not in ("Task", "Parallel"):
            continue
        assert state.get("Retry"), f"{name} has no Retry"
        for retry in state["Retry"]:
            unknown = set(retry["ErrorEquals"]) - RAISED_BY[integration(state)]
            assert not unknown, f"{name} retries {unknown}, which {integration(state)} never raises"
            assert retry.get("BackoffRate", 1) > 1, name
        if state["Type"] == "Task" and integration(state) == "lambda":
            assert {e for r in state["Retry"] for e in r["ErrorEquals"]} >= LAMBDA_ERRORS, name
        checked += 1
    assert checked > 5


@pytest.mark.parametrize("path", [*DEFINITIONS, "statemachines/batch.asl.json"])
def test_a_request_sagemaker_rejects_fails_at_once(path: str):
    """Every optimized SageMaker call sits in a Parallel that retries only TransientSageMakerError; its
    Catch of SageMaker.AmazonSageMakerException goes to a Choice whose default re-raises the error as is."""
    states = all_states(path)
    calls = [s for s in states.values() if s["Type"] == "Task" and integration(s) == "sagemaker"]
    assert calls
    for call in calls:
        [catch] = [c for c in call["Catch"] if "SageMaker.AmazonSageMakerException" in c["ErrorEquals"]]
        choice = states[catch["Next"]]
        assert choice["Type"] == "Choice"
        rejected = states[choice["Default"]]
        assert rejected == {
            "Type": "Fail",
            "Comment": rejected.get("Comment"),
            "ErrorPath": "$.error.Error",
            "CausePath": "$.error.Cause",
        }
        patterns = {c["StringMatches"] for rule in choice["Choices"] for c in rule["Or"]}
        assert "*Error Code: ThrottlingException;*" in patterns
        assert not any("ValidationException" in p for p in patterns)
        assert states[choice["Choices"][0]["Next"]]["Error"] == "TransientSageMakerError"
    for name, state in states.items():
        if state["Type"] == "Parallel":
            assert state["Retry"][0]["ErrorEquals"] == ["TransientSageMakerError"], name
            assert state["Catch"][-1]["ErrorEquals"] == ["States.ALL"], name


def test_a_job_that_failed_for_want_of_capacity_is_retried():
    states = {**all_states("statemachines/pipeline.asl.json"), **all_states("statemachines/batch.asl.json")}
    for step in ("ProcessData", "TrainModel", "EvaluateModel", "RunTransform"):
        choice = states[f"{step}JobTransient?"]
        patterns = {c["StringMatches"] for rule in choice["Choices"] for c in rule["Or"]}
        assert "*CapacityError*" in patterns and choice["Choices"][0]["Next"] == f"{step}TransientError"
        assert states[choice["Default"]]["Error"] == "SageMakerJobEnded"


def test_every_catch_records_its_step_before_notifying():
    states = states_of("statemachines/pipeline.asl.json")
    for name, state in states.items():
        for catcher in state.get("Catch", []):
            target = states[catcher["Next"]]
            if target["Type"] == "Pass":
                assert target["ResultPath"] == "$.failedStep" and target["Next"] == "NotifyFailure", name


ALL_DEFINITIONS = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "statemachines").glob("*.asl.json"))


def test_the_copies_of_each_retry_policy_and_failure_record_are_equal():
    """ASL has no shared blocks: the same Retry appears on every Task of one integration, and each step has
    its Record<Step>Failure Pass state. A Catch's `Assign` of a variable would replace those states, but the
    emulator cannot read a variable back (moto 5.2.5 assigns `$failedStep`, then fails the next state with
    TypeError), so this test holds the copies equal instead."""
    policies: dict[str, set[str]] = {}
    for path in ALL_DEFINITIONS:
        for name, state in all_states(path).items():
            if "Retry" in state:
                policies.setdefault(integration(state), set()).add(json.dumps(state["Retry"], sort_keys=True))
            if name.startswith("Record") and name.endswith("Failure"):
                step = name.removeprefix("Record").removesuffix("Failure")
                assert {k: v for k, v in state.items() if k != "Comment"} == {
                    "Type": "Pass",
                    "Result": step,
                    "ResultPath": "$.failedStep",
                    "Next": state["Next"],
                }, name
    # One policy per integration, but: PrepareDeployment also waits out EndpointBusyError and the batch
    # waiter's check retries its own AWS errors (lambda); jobs and endpoint calls retry apart (parallel).
    allowed = {"lambda": 3, "parallel": 2}
    assert {kind: len(found) for kind, found in policies.items()} == {
        kind: allowed.get(kind, 1) for kind in policies
    }, policies


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
        for name, state in all_states(path).items():
            resource = state.get("Resource", "")
            action = resource.split(":::")[-1].split(":")[-1].split(".")[0] if ":::" in resource else ""
            if resource.endswith(".sync:2"):
                action = resource.split(":::")[-1].split(":")[1].split(".")[0]
            if action in NAME_OF_CREATED:
                assert "States.UUID()" in state["Parameters"][NAME_OF_CREATED[action]], (
                    f"{name} reuses a name on retry"
                )
                checked += 1
    assert checked == 8  # PromoteToProd (Stages=staging-prod) is the eighth


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


def test_the_deploy_wait_loop_is_bounded_and_ends_on_every_final_status():
    states = states_of("statemachines/deploy.asl.json")
    choices = states["EndpointReady?"]["Choices"]
    assert any(c.get("NumericGreaterThanEqualsPath") == "$.deploy.maxPolls" for c in choices)
    assert states["WaitForEndpoint"]["SecondsPath"] == "$.deploy.waitSeconds"
    assert (
        "DeploymentConfig.$"
        not in all_states("statemachines/deploy.asl.json")["UpdateServerlessEndpoint"]["Parameters"]
    )
    ending = {
        c["StringEquals"]: c["Next"] for c in choices if c.get("Variable") == "$.endpoint.EndpointStatus"
    }
    # Creating, Updating and SystemUpdating keep waiting; every other status ends the wait with its cause.
    assert set(ending) == {"InService", "Failed", "RollingBack", "UpdateRollbackFailed", "OutOfService"}
    for status, target in ending.items():
        assert states[target]["ResultPath"] == "$.failedStep", status
        assert states[target]["Next"] == "DescribeDeploymentFailure", status


def test_every_way_out_of_a_deployment_releases_the_endpoint():
    """From the start, no Succeed/Fail/End state is reachable without passing a FinishDeployment task."""
    states = states_of("statemachines/deploy.asl.json")

    def finishes(name: str) -> bool:
        return states[name].get("Resource") == "${FinishDeploymentFunctionArn}"

    seen, pending = set(), ["PrepareDeployment"]
    while pending:
        name = pending.pop()
        if name in seen or finishes(name):
            continue
        seen.add(name)
        state = states[name]
        assert state["Type"] not in ("Succeed", "Fail") and not state.get("End"), f"{name} skips the release"
        targets = [state.get("Next"), state.get("Default")]
        targets += [c.get("Next") for c in state.get("Choices", [])]
        targets += [c.get("Next") for c in state.get("Catch", [])]
        pending += [t for t in targets if t]
    assert sum(finishes(n) for n in states) == 4


def test_substitutions_use_only_resources_of_the_template():
    template = (ROOT / "template.yaml").read_text()
    for path in DEFINITIONS:
        for placeholder in set(re.findall(r"\$\{(\w+)\}", (ROOT / path).read_text())):
            assert f"{placeholder}:" in template, placeholder
