"""Names fit SageMaker's and Step Functions' limits; the trigger convention decides what belongs to a dataset
and what starts a run."""

from __future__ import annotations

import pytest

from mlops_common.pipeline import naming, trigger
from mlops_common.pipeline.naming import EXECUTION_NAME_MAX, SAGEMAKER_NAME_MAX, is_valid_sagemaker_name

LONGEST_STACK = "s" * 43
AWKWARD_DATASETS = ["iris", "My Data (v2)", "données été", "a" * 200, "x", "----", "UPPER_case.set"]


@pytest.mark.parametrize("dataset", AWKWARD_DATASETS)
@pytest.mark.parametrize("stack", ["sagemaker-mlops", LONGEST_STACK, "m"])
def test_every_generated_sagemaker_name_is_valid_including_the_state_machine_suffix(stack: str, dataset: str):
    run_id = naming.execution_name(dataset, "0123456789abcdef" * 4)
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
def test_execution_and_waiter_names_fit_80_characters_and_are_deterministic(dataset: str):
    first = naming.execution_name(dataset, "a" * 64)
    assert first == naming.execution_name(dataset, "a" * 64)
    assert first != naming.execution_name(dataset, "b" * 64)
    waiter = naming.waiter_name(dataset, "c" * 32)
    for name in (first, waiter):
        assert len(name) <= EXECUTION_NAME_MAX
        assert all(ch.isalnum() or ch == "-" for ch in name)


def test_datasets_differing_only_in_case_or_punctuation_get_different_resources():
    names = {naming.dataset_resource_name("stack", d) for d in ("my-data", "My-Data", "my_data", "my data")}
    assert len(names) == 4


def test_run_prefixes_differ_per_run_of_the_same_dataset():
    assert naming.run_prefix("stack", "iris", "iris-aaaa") != naming.run_prefix("stack", "iris", "iris-bbbb")


def test_an_invalid_stack_name_is_refused_with_the_rule():
    with pytest.raises(ValueError, match="1-43 characters"):
        naming.dataset_resource_name("S" * 44, "iris")


@pytest.mark.parametrize(
    ("key", "size", "action", "dataset", "split"),
    [
        ("training/iris/iris.csv", 10, trigger.UPLOAD, "iris", "training"),
        ("training/iris/iris.csv.gz", 10, trigger.UPLOAD, "iris", "training"),
        ("training/sales/data.parquet", 10, trigger.UPLOAD, "sales", "training"),
        ("training/shards/part-0001/data.csv", 10, trigger.UPLOAD, "shards", "training"),
        ("training/images/cat/1.jpg", 10, trigger.UPLOAD, "images", "training"),
        ("training/iris/pipeline.json", 10, trigger.UPLOAD, "iris", "training"),
        ("validation/iris/iris.csv", 10, trigger.UPLOAD, "iris", "validation"),
        ("test/iris/part/iris.csv", 10, trigger.UPLOAD, "iris", "test"),
        ("training/images/_READY", 0, trigger.MARKER, "images", "training"),
        ("training/shards/manifest.json", 30, trigger.MARKER, "shards", "training"),
        ("training/shards/sub/_READY", 0, trigger.IGNORE, "shards", "training"),
        ("validation/iris/_READY", 0, trigger.IGNORE, "iris", "validation"),
        ("training/iris/", 0, trigger.IGNORE, None, None),
        ("training/iris/empty.csv", 0, trigger.IGNORE, "iris", "training"),
        ("training/iris/notes.docx", 10, trigger.IGNORE, "iris", "training"),
        ("training/loose.csv", 10, trigger.IGNORE, None, None),
        ("elsewhere/iris/iris.csv", 10, trigger.IGNORE, None, None),
        ("recipes/iris/train.py", 10, trigger.IGNORE, None, None),
    ],
)
def test_the_trigger_convention(key: str, size: int, action: str, dataset: str | None, split: str | None):
    decision = trigger.classify(key, size)
    assert decision.action == action, decision.reason
    assert decision.dataset == dataset
    assert decision.split == split
    assert decision.reason


def test_a_datasets_folders_end_with_a_slash_so_longer_names_are_other_datasets():
    assert trigger.dataset_prefixes("iris") == ["training/iris/", "validation/iris/", "test/iris/"]


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
