"""The sample events in events/ (used by `sam local invoke -e`) fit the handlers they are for."""

from __future__ import annotations

import json

import pytest

from mlops_common.pipeline import prepare, report, trigger
from tests.conftest import load_function_module

from .conftest import EVENTS, load_event

notify = load_function_module("notify")

EVENT_FILES = {
    "start_run": [
        "start_run_object_created.json",
        "start_run_marker.json",
        "start_run_s3_notification.json",
        "start_run_quiet_check.json",
    ],
    "redrive": ["redrive.json"],
    "prepare_run": ["pipeline_execution_input.json"],
    "quality_gate": ["quality_gate.json"],
    "register_model": ["register_model.json"],
    "prepare_deployment": ["prepare_deployment.json"],
    "finish_deployment": ["finish_deployment.json"],
    "smoke_test": ["smoke_test.json"],
    "notify": ["notify_failed.json", "notify_succeeded.json"],
    "approval_listener": ["approval_listener_approved.json"],
}


@pytest.mark.parametrize("function", sorted(EVENT_FILES))
def test_every_pipeline_function_has_sample_events(function: str):
    for name in EVENT_FILES[function]:
        assert isinstance(json.loads((EVENTS / name).read_text()), dict), name


def test_the_start_run_samples_start_runs():
    for name, kind in (
        ("start_run_object_created.json", trigger.UPLOAD),
        ("start_run_marker.json", trigger.MARKER),
    ):
        [event] = trigger.parse_events(load_event(name))
        assert trigger.classify(event.key, event.size).action == kind
    [encoded] = trigger.parse_events(load_event("start_run_s3_notification.json"))
    assert encoded.key == "training/house prices/sales (été).csv"


def test_the_execution_input_sample_is_what_prepare_run_accepts():
    assert prepare.RunInput.from_event(load_event("pipeline_execution_input.json")).dataset == "iris"


def test_the_state_samples_carry_what_the_handlers_read():
    gate_event = load_event("quality_gate.json")
    assert {"paths", "config", "names", "runId"} <= set(gate_event["run"])
    register_event = load_event("register_model.json")
    assert register_event["gate"]["passed"] is True and register_event["modelDataUrl"].endswith(
        "model.tar.gz"
    )
    summary = report.summary(load_event("notify_succeeded.json")["state"])
    assert summary["modelPackageArn"] and summary["metrics"] and summary["endpointName"]


def test_notify_handles_its_samples(stack, lambda_context):
    queue = stack.subscribe_queue()
    failed = notify.lambda_handler(load_event("notify_failed.json"), lambda_context)
    succeeded = notify.lambda_handler(load_event("notify_succeeded.json"), lambda_context)
    assert failed["error"] == "TrainingJobStopped" and succeeded["outcome"] == "succeeded"
    subjects = sorted(json.loads(m["Message"])["outcome"] for m in stack.messages(queue))
    assert subjects == ["failed", "succeeded"]
