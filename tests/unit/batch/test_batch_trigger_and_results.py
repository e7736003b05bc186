"""Which uploads start a batch, and how a batch's output is read back into rows and unreadable lines."""

from __future__ import annotations

import json

import pytest

from mlops_common.batch import results, trigger
from mlops_common.pipeline.trigger import ObjectEvent, parse_events


@pytest.mark.parametrize(
    ("key", "size", "start", "kind", "prefix"),
    [
        ("inference/sales/week1.csv", 10, True, trigger.SINGLE_FILE, "inference/sales/week1.csv"),
        ("inference/sales/week1.CSV", 10, True, trigger.SINGLE_FILE, "inference/sales/week1.CSV"),
        ("inference/sales/june/_READY", 0, True, trigger.FOLDER, "inference/sales/june/"),
        ("inference/sales/june/manifest.json", 5, True, trigger.FOLDER, "inference/sales/june/"),
        ("inference/sales/june/part-1.csv", 10, False, None, None),
        ("inference/sales/june/deeper/_READY", 0, False, None, None),
        ("inference/sales/notes.txt", 10, False, None, None),
        ("inference/sales/empty.csv", 0, False, None, None),
        ("inference/sales/", 0, False, None, None),
        ("inference/rows.csv", 10, False, None, None),
        ("training/sales/rows.csv", 10, False, None, None),
    ],
)
def test_classify(key: str, size: int, start: bool, kind: str | None, prefix: str | None) -> None:
    decision = trigger.classify(key, size)
    assert (decision.start, decision.trigger, decision.input_prefix) == (start, kind, prefix), decision.reason


def test_a_file_in_a_folder_says_which_marker_to_upload() -> None:
    reason = trigger.classify("inference/sales/june/part-1.csv", 10).reason
    assert reason == "part of a folder batch: upload inference/sales/june/_READY when all files are there"


def test_batch_ids_are_short_path_safe_and_differ_per_version() -> None:
    def event(version: str) -> ObjectEvent:
        return ObjectEvent("bkt", "inference/Sales Data/Week 1 (final).csv", 10, "e", version, "s")

    decision = trigger.classify(event("v1").key, 10)
    first, second = trigger.batch_id(event("v1"), decision), trigger.batch_id(event("v2"), decision)
    assert first != second
    assert first == trigger.batch_id(event("v1"), decision)
    assert len(first) <= trigger.BATCH_NAME_MAX
    assert first.startswith("week-1-final-")
    assert all(c.isalnum() or c == "-" for c in first)


def test_compare_counts_rows_skips_the_header_and_names_bad_lines() -> None:
    source = "a,b\n1,2\n\nx,2\n3,4\n"
    output = 'a,b,prediction\n1,2,yes\nx,2,"ERROR: the row has text, b is numeric"\n3,4,no\n'
    rows, predicted, bad = results.compare("inference/d/f.csv", source, output)
    assert (rows, predicted) == (3, 2)
    assert [str(b) for b in bad] == ["inference/d/f.csv line 4: the row has text, b is numeric"]


def test_compare_refuses_outputs_that_do_not_line_up() -> None:
    with pytest.raises(results.OutputMismatch, match="2 input record"):
        results.compare("f.csv", "1\n2\n", "1,a\n")
    with pytest.raises(results.OutputMismatch, match="line 2: the output line does not start with its input"):
        results.compare("f.csv", "1\n2\n", "1,a\n3,b\n")


def test_a_failed_transform_job_is_explained_with_its_failure_reason() -> None:
    describe = {
        "TransformJobName": "s-d-1-batch-ab12",
        "TransformJobStatus": "Failed",
        "FailureReason": "boom",
    }
    state = {
        "failedStep": "RunTransform",
        "error": {"Error": "States.TaskFailed", "Cause": json.dumps(describe)},
        "prepared": {"dataset": "d", "batchId": "f-1"},
    }
    subject, message = results.failed_message(state)
    assert subject == "Batch failed at RunTransform: d/f-1"
    assert message["error"] == "TransformJobFailed"
    assert message["cause"] == "Transform job s-d-1-batch-ab12 Failed: boom"


def test_the_success_message_lists_at_most_twenty_unreadable_rows() -> None:
    result = results.BatchResult(
        rows=30, predicted=5, bad=[results.BadRow("f.csv", n, "bad") for n in range(25)]
    )
    prepared = {"dataset": "d", "batchId": "b", "outputUri": "s3://o/predictions/d/b/", "model": {}}
    subject, message = results.succeeded_message(prepared, result)
    assert subject == "Batch predicted: d/b (5 rows, 25 unreadable)"
    assert len(message["unreadable"]) == results.MAX_LISTED
    assert message["unreadableNote"] == "5 more in s3://o/predictions/d/b/_batch.json"


def test_the_sample_events_start_a_batch_and_match_the_starters_input() -> None:
    from tests.unit.pipeline.conftest import load_event

    [event] = parse_events(load_event("start_batch_object_created.json"))
    decision = trigger.classify(event.key, event.size)
    assert decision.start and decision.trigger == trigger.SINGLE_FILE
    execution_input = load_event("batch_execution_input.json")
    assert execution_input["batchId"] == trigger.batch_id(event, decision)
    assert execution_input["inputPrefix"] == decision.input_prefix
