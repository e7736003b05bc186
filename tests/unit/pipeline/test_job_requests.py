"""The three job requests built from plain values, with no AWS at all."""

from __future__ import annotations

import json
from typing import Any

from mlops_common.pipeline import job_requests
from mlops_common.pipeline.data_formats import DetectedFormat
from mlops_common.pipeline.gate import Champion
from mlops_common.pipeline.recipe_bundle import CodeLocation
from mlops_common.pipeline.run_config import resolve

CODE = CodeLocation(
    "abc", "s3://models/code/recipe-abc/sourcedir.tar.gz", "s3://models/code/recipe-abc/src/", True
)
PATHS = {
    split: f"s3://out/runs/iris/r1/processed/{split}/" for split in ("train", "validation", "test", "schema")
} | {
    "evaluation": "s3://out/runs/iris/r1/evaluation/",
    "model": "s3://models/runs/iris/r1/training",
    "checkpoints": "s3://models/checkpoints/runs/iris/r1/",
}
NAMES = {"experiment": "stack-iris", "trial": "stack-r1"}


def _jobs(overrides: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "stack_name": "stack",
        "region": "eu-west-1",
        "dataset": "iris",
        "run_id": "r1",
        "config": resolve({}, overrides or {}),
        "fmt": DetectedFormat("csv", "text/csv", tabular=True),
        "data_uri": "s3://out/runs/iris/r1/input/training/",
        "validation_uri": None,
        "test_uri": None,
        "code": CODE,
        "image": "img:1",
        "names": NAMES,
        "paths": PATHS,
    }
    values.update(extra)
    return job_requests.build_jobs(**values)


def test_the_default_recipe_gets_its_three_scripts_tags_and_experiment() -> None:
    jobs = _jobs()
    assert set(jobs) == {"process", "train", "evaluate"}
    assert jobs["process"]["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/preprocess.py",
    ]
    assert [i["InputName"] for i in jobs["process"]["ProcessingInputs"]] == ["code", "data"]
    assert jobs["train"]["HyperParameters"]["sagemaker_program"] == json.dumps("train.py")
    assert jobs["train"]["HyperParameters"]["sagemaker_region"] == json.dumps("eu-west-1")
    assert jobs["train"]["OutputDataConfig"] == {"S3OutputPath": PATHS["model"]}
    for name, job in jobs.items():
        assert {"Key": "mlops:run-id", "Value": "r1"} in job["Tags"], name
        assert job["ExperimentConfig"]["TrialName"] == "stack-r1"
    # No champion: no ContainerArguments at all (SageMaker rejects an empty list).
    assert "ContainerArguments" not in jobs["evaluate"]["AppSpecification"]


def test_user_splits_champion_and_spot_reach_the_requests() -> None:
    champion = Champion(package_arn="arn:pkg/1", metrics={"accuracy": 0.9})
    jobs = _jobs(
        {"managed_spot": True},
        validation_uri="s3://out/v/",
        test_uri="s3://out/t/",
        champion=champion,
    )
    assert [i["InputName"] for i in jobs["process"]["ProcessingInputs"]] == [
        "code",
        "data",
        "validation",
        "test",
    ]
    assert jobs["evaluate"]["AppSpecification"]["ContainerArguments"] == job_requests.champion_arguments(
        champion
    )
    assert jobs["train"]["EnableManagedSpotTraining"] is True
    assert "MaxWaitTimeInSeconds" in jobs["train"]["StoppingCondition"]


def test_folder_formats_train_with_the_default_recipe_others_do_not() -> None:
    assert job_requests.default_recipe_trains(DetectedFormat("image", "application/x-image", tabular=False))
    assert not job_requests.default_recipe_trains(DetectedFormat("recordio", "application/x-recordio", False))
