"""The SageMaker job requests of one run (ProcessData, TrainModel, EvaluateModel), built from typed values
with no I/O; the state machine adds only the job names."""

from __future__ import annotations

import json
from typing import Any

from mlops_common.pipeline import naming, recipe_bundle
from mlops_common.pipeline.data_formats import DetectedFormat
from mlops_common.pipeline.gate import Champion
from mlops_common.pipeline.run_config import CLASSIFICATION_METRICS, REGRESSION_METRICS, RunConfig

PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
VOLUME_GB = 30

# Non-tabular formats the default recipe trains on (class folders: training/<dataset>/<class>/<file>).
DEFAULT_RECIPE_FOLDER_FORMATS = ("image", "text")


def default_recipe_trains(fmt: DetectedFormat) -> bool:
    return fmt.tabular or fmt.data_format in DEFAULT_RECIPE_FOLDER_FORMATS


def _s3_input(name: str, uri: str, local: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _s3_output(name: str, uri: str, local: str) -> dict[str, Any]:
    return {"OutputName": name, "S3Output": {"S3Uri": uri, "LocalPath": local, "S3UploadMode": "EndOfJob"}}


def _channel(name: str, uri: str, content_type: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }
    if content_type:
        channel["ContentType"] = content_type
    return channel


def metric_definitions() -> list[dict[str, str]]:
    """train.py logs 'validation:<metric>=<float>' lines; SageMaker scrapes these from the logs."""
    return [
        {
            "Name": f"validation:{metric}",
            "Regex": f"validation:{metric}=([-+]?[0-9]*\\.?[0-9]+([eE][-+]?[0-9]+)?)",
        }
        for metric in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
    ]


def hyperparameters(
    config: RunConfig, code: recipe_bundle.CodeLocation, region: str, program: str
) -> dict[str, Any]:
    """Script-mode hyperparameters: the SDK JSON-encodes the sagemaker_* values, so do we."""
    values = {"seed": str(config["seed"]), **config["hyperparameters"]}
    # pipeline.json uses snake_case; the recipe's arguments are --kebab-case.
    user = {name.replace("_", "-"): value for name, value in values.items()}
    return {
        **user,
        "sagemaker_program": json.dumps(program),
        "sagemaker_submit_directory": json.dumps(code.sourcedir_uri),
        "sagemaker_region": json.dumps(region),
        "sagemaker_container_log_level": "20",
    }


def build_jobs(
    *,
    stack_name: str,
    region: str,
    dataset: str,
    run_id: str,
    config: RunConfig,
    fmt: DetectedFormat,
    data_uri: str,
    validation_uri: str | None,
    test_uri: str | None,
    code: recipe_bundle.CodeLocation,
    image: str,
    names: dict[str, str],
    paths: dict[str, str],
    champion: Champion | None = None,
) -> dict[str, Any]:
    """The request fields of the three jobs, minus their names (the state machine adds those)."""
    custom = config["recipe"] is not None
    scripts = (
        dict.fromkeys(("preprocess", "train", "evaluate"), config["recipe"]["entry_point"])
        if custom
        else {"preprocess": "preprocess.py", "train": "train.py", "evaluate": "evaluate.py"}
    )
    experiment = {"ExperimentName": names["experiment"], "TrialName": names["trial"]}
    tags = [
        {"Key": "mlops:stack", "Value": stack_name},
        {"Key": "mlops:dataset", "Value": naming.safe_value(dataset)},
        {"Key": "mlops:run-id", "Value": run_id},
    ]
    processing_resources = {
        "ClusterConfig": {
            "InstanceCount": 1,
            "InstanceType": config["processing_instance_type"],
            "VolumeSizeInGB": VOLUME_GB,
        }
    }
    stopping = {"MaxRuntimeInSeconds": config["max_runtime_seconds"]}
    target = config["target_column"]
    preprocess_args = [
        *(["--mode", "preprocess"] if custom else []),
        "--target-column",
        str(target),
        "--problem-type",
        config["problem_type"],
        "--data-format",
        fmt.data_format if default_recipe_trains(fmt) else "auto",
        "--text-columns",
        json.dumps(config["text_columns"]),
        "--max-invalid-row-fraction",
        str(config["max_invalid_row_fraction"]),
        "--train-fraction",
        str(config["train_fraction"]),
        "--validation-fraction",
        str(config["validation_fraction"]),
        "--seed",
        str(config["seed"]),
    ]
    process_inputs = [
        _s3_input("code", code.src_uri, CODE_DIR),
        _s3_input("data", data_uri, f"{PROCESSING}/input/data"),
    ]
    if validation_uri:
        process_inputs.append(_s3_input("validation", validation_uri, f"{PROCESSING}/input/validation"))
    if test_uri:
        process_inputs.append(_s3_input("test", test_uri, f"{PROCESSING}/input/test"))
    process = {
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["python3", f"{CODE_DIR}/{scripts['preprocess']}"],
            "ContainerArguments": preprocess_args,
        },
        "ProcessingInputs": process_inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                _s3_output(split, paths[split], f"{PROCESSING}/output/{split}")
                for split in ("train", "validation", "test", "schema")
            ]
        },
        "ProcessingResources": processing_resources,
        "StoppingCondition": stopping,
        "ExperimentConfig": {**experiment, "TrialComponentDisplayName": "ProcessData"},
        "Tags": tags,
    }
    train_stopping = dict(stopping)
    if config["managed_spot"]:
        train_stopping["MaxWaitTimeInSeconds"] = config["max_wait_seconds"]
    train = {
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "HyperParameters": hyperparameters(config, code, region, scripts["train"]),
        "InputDataConfig": [
            _channel("train", paths["train"], "text/csv"),
            _channel("validation", paths["validation"], "text/csv"),
            _channel("schema", paths["schema"], "application/json"),
        ],
        "OutputDataConfig": {"S3OutputPath": paths["model"]},
        "ResourceConfig": {
            "InstanceType": config["training_instance_type"],
            "InstanceCount": config["training_instance_count"],
            "VolumeSizeInGB": VOLUME_GB,
        },
        "StoppingCondition": train_stopping,
        "EnableManagedSpotTraining": bool(config["managed_spot"]),
        # Checkpoints also without spot: a retried job reuses an identical fit (train.py resumes from it).
        "CheckpointConfig": {"S3Uri": paths["checkpoints"], "LocalPath": "/opt/ml/checkpoints"},
        "ExperimentConfig": {**experiment, "TrialComponentDisplayName": "TrainModel"},
        "Tags": tags,
    }
    evaluate_arguments = ["--mode", "evaluate"] if custom else champion_arguments(champion)
    evaluate = {
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["python3", f"{CODE_DIR}/{scripts['evaluate']}"],
            # SageMaker rejects an empty ContainerArguments list (1-256 items): none at all, or some.
            **({"ContainerArguments": evaluate_arguments} if evaluate_arguments else {}),
        },
        "ProcessingOutputConfig": {
            "Outputs": [_s3_output("evaluation", paths["evaluation"], f"{PROCESSING}/output/evaluation")]
        },
        "ProcessingResources": processing_resources,
        "StoppingCondition": stopping,
        "ExperimentConfig": {**experiment, "TrialComponentDisplayName": "EvaluateModel"},
        "Tags": tags,
    }
    return {"process": process, "train": train, "evaluate": evaluate}


def champion_arguments(champion: Champion | None) -> list[str]:
    """The serving model's recorded metrics for the evaluation report (champion beside challenger)."""
    if champion is None:
        return []
    return [
        "--champion-metrics",
        json.dumps(champion.metrics, sort_keys=True),
        "--champion-package",
        champion.package_arn,
    ]
