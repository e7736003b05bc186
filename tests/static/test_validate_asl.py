"""The ASL checker catches what it promises to, and the project's definitions pass it."""

from __future__ import annotations

import json

from tests.static import validate_asl


def _machine(**states):
    return {"StartAt": next(iter(states)), "States": states}


def test_flags_a_task_without_retry_or_catch():
    definition = _machine(Train={"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True})
    problems = validate_asl.structural_problems(definition)
    assert "root/Train: Task without Retry" in problems
    assert "root/Train: Task without Catch" in problems


def test_flags_dangling_next_inside_a_parallel_branch():
    branch = _machine(A={"Type": "Pass", "Next": "Missing"})
    definition = _machine(Fanout={"Type": "Parallel", "Branches": [branch], "End": True})
    assert validate_asl.structural_problems(definition) == [
        "root/Fanout[0]/A: goes to 'Missing', which is not a state"
    ]


def test_flags_catch_target_and_choice_default():
    definition = _machine(
        Pick={
            "Type": "Choice",
            "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Done"}],
            "Default": "Nope",
        },
        Done={"Type": "Succeed"},
    )
    assert validate_asl.structural_problems(definition) == ["root/Pick: goes to 'Nope', which is not a state"]


def test_accepts_a_complete_task():
    definition = _machine(
        Work={
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Retry": [{"ErrorEquals": ["States.ALL"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "End": True,
        },
        Failed={"Type": "Fail"},
    )
    assert validate_asl.structural_problems(definition) == []


def test_syntax_errors_are_reported():
    assert validate_asl.asl_syntax_problem(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Nope"}}}))
    valid = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "${Thing}", "End": True}}})
    assert validate_asl.asl_syntax_problem(valid) is None


def test_project_definitions_pass():
    files = sorted((validate_asl.ROOT / "statemachines").glob("*.asl.json"))
    substitutions = validate_asl.template_substitutions()
    problems = [p for f in files for p in validate_asl.check_file(f, substitutions)]
    assert problems == []
