"""The batch waiter's ASL: it loops only while start_run says "waiting", retries what can pass, never ends
silently (its executions run for real in tests/e2e/test_trigger.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.static import validate_asl

ROOT = Path(__file__).resolve().parents[3]
WAITER = ROOT / "statemachines" / "batch_waiter.asl.json"


def test_structure_and_substitutions():
    assert validate_asl.check_file(WAITER, validate_asl.template_substitutions()) == []


def test_it_waits_the_time_start_run_returns_and_loops_only_while_waiting():
    states = json.loads(WAITER.read_text())["States"]
    assert states["WaitForQuiet"]["SecondsPath"] == "$.waitSeconds"
    check = states["CheckQuietPeriod"]
    assert check["Parameters"]["quietCheck"]["waiter.$"] == "$$.Execution.Name", "the slot names the waiter"
    assert check["ResultPath"] == "$", "start_run returns the next state: dataset, quietSeconds, waitSeconds"
    [loop] = states["Quiet?"]["Choices"]
    assert (loop["StringEquals"], loop["Next"]) == ("waiting", "WaitForQuiet")
    assert states[states["Quiet?"]["Default"]]["Type"] == "Succeed"


def test_a_failing_check_is_retried_with_backoff_then_fails_the_execution_for_the_alarm():
    check = json.loads(WAITER.read_text())["States"]["CheckQuietPeriod"]
    retried = {error for retry in check["Retry"] for error in retry["ErrorEquals"]}
    assert {"Lambda.TooManyRequestsException", "ClientError", "ThrottlingException"} <= retried
    assert all(retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 3 for retry in check["Retry"])
    [catch] = check["Catch"]
    states = json.loads(WAITER.read_text())["States"]
    assert catch["ErrorEquals"] == ["States.ALL"] and states[catch["Next"]]["Type"] == "Fail"
