"""Names fit SageMaker's and Step Functions' limits; the trigger convention decides what starts a run."""

from __future__ import annotations

import pytest

from mlops_common.pipeline import naming, trigger
from mlops_common.pipeline.naming import EXECUTION_NAME_MAX, SAGEMAKER_NAME_MAX, is_valid_sagemaker_name

LONGEST_STACK = "s" * 43
AWKWARD_DATASETS = ["iris", "My Data (v2)", "données été", "a" * 200, "x", "----", "UPPER_case.set"]


@pytest.mark.parametrize("dataset", AWKWARD_DATASETS)
@pytest.mark.parametrize("stack", ["sagemaker-mlops", LONGEST_STACK, "m"])
def test_every_generated_sagemaker_name_is_valid_including_the_state_machine_suffix(stack: str, dataset: str):
    run_id = naming.execution_name(dataset, "bucket", f"training/{dataset}/data.csv", "v1")
    prefix = naming.run_prefix(stack, dataset, run_id)
    for step in ("proc", "train", "eval", "model", "cfg"):
        name = f"{prefix}-{step}-abcd"  # what States.Format adds on every attempt
        assert len(name) <= SAGEMAKER_NAME_MAX, name
        assert is_valid_sagemaker_name(name), name
        assert name.startswith(f"{stack}-"), "IAM scopes jobs to the stack's prefix"
    resource = naming.dataset_resource_name(stack, dataset)
    assert is_valid_sagemaker_name(resource) and resource.startswith(f"{stack}-")
    assert len(naming.trial_name(stack, run_id)) <= 120


@pytest.mark.parametrize("dataset", AWKWARD_DATASETS)
def test_execution_names_fit_80_characters_and_are_deterministic(dataset: str):
    first = naming.execution_name(dataset, "b", f"training/{dataset}/f.csv", "v1")
    assert first == naming.execution_name(dataset, "b", f"training/{dataset}/f.csv", "v1")
    assert first != naming.execution_name(dataset, "b", f"training/{dataset}/f.csv", "v2")
    assert len(first) <= EXECUTION_NAME_MAX
    assert all(ch.isalnum() or ch == "-" for ch in first)


def test_datasets_differing_only_in_case_or_punctuation_get_different_resources():
    names = {naming.dataset_resource_name("stack", d) for d in ("my-data", "My-Data", "my_data", "my data")}
    assert len(names) == 4


def test_run_prefixes_differ_per_run_of_the_same_dataset():
    assert naming.run_prefix("stack", "iris", "iris-aaaa") != naming.run_prefix("stack", "iris", "iris-bbbb")


def test_an_invalid_stack_name_is_refused_with_the_rule():
    with pytest.raises(ValueError, match="1-43 characters"):
        naming.dataset_resource_name("S" * 44, "iris")


@pytest.mark.parametrize(
    ("key", "size", "start", "dataset", "kind"),
    [
        ("training/iris/iris.csv", 10, True, "iris", trigger.SINGLE_FILE),
        ("training/iris/iris.csv.gz", 10, True, "iris", trigger.SINGLE_FILE),
        ("training/sales/data.parquet", 10, True, "sales", trigger.SINGLE_FILE),
        ("training/logs/events.jsonl", 10, True, "logs", trigger.SINGLE_FILE),
        ("training/a9a/train.libsvm", 10, True, "a9a", trigger.SINGLE_FILE),
        ("training/images/_READY", 0, True, "images", trigger.MARKER),
        ("training/shards/manifest.json", 30, True, "shards", trigger.MARKER),
        ("training/shards/part-0001/data.csv", 10, False, "shards", None),
        ("training/images/cat/1.jpg", 10, False, "images", None),
        ("training/images/1.png", 10, False, "images", None),
        ("training/iris/pipeline.json", 10, False, "iris", None),
        ("training/iris/", 0, False, None, None),
        ("training/iris/empty.csv", 0, False, "iris", None),
        ("training/iris/notes.docx", 10, False, "iris", None),
        ("training/loose.csv", 10, False, None, None),
        ("validation/iris/iris.csv", 10, False, None, None),
        ("elsewhere/iris.csv", 10, False, None, None),
    ],
)
def test_the_trigger_convention(key: str, size: int, start: bool, dataset: str | None, kind: str | None):
    decision = trigger.classify(key, size)
    assert decision.start is start, decision.reason
    assert decision.dataset == dataset
    assert decision.trigger == kind
    assert decision.reason


def test_s3_notification_keys_are_url_decoded_and_eventbridge_keys_kept():
    records = {
        "Records": [
            {
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {"key": "training/house+prices/sales+%28%C3%A9t%C3%A9%29.csv", "size": 5},
                }
            }
        ]
    }
    assert trigger.parse_events(records)[0].key == "training/house prices/sales (été).csv"
    bridge = {
        "source": "aws.s3",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "training/a+b/c d.csv"}},
    }
    assert trigger.parse_events(bridge)[0].key == "training/a+b/c d.csv"
    assert trigger.key_candidates("training/a+b/c%20d.csv") == [
        "training/a+b/c%20d.csv",
        "training/a b/c d.csv",
    ]


def test_an_event_of_another_shape_is_refused_with_what_was_expected():
    with pytest.raises(trigger.EventShapeError, match="Object Created"):
        trigger.parse_events({"source": "aws.ec2", "detail": {}})


def test_without_versioning_a_changed_object_is_a_new_version_and_a_redelivery_is_not():
    def event(etag: str) -> trigger.ObjectEvent:
        return trigger.ObjectEvent("b", "training/d/x.csv", 5, etag, None, "617f08299329d189")

    assert trigger.execution_name_for(event("e1"), "d") == trigger.execution_name_for(event("e1"), "d")
    assert trigger.execution_name_for(event("e1"), "d") != trigger.execution_name_for(event("e2"), "d")
