"""Prepare a run: read its manifest (written by start_run), copy exactly the listed object versions into
the run's folder (every job reads only those copies), resolve its configuration from the listed pipeline.json,
look at its data, upload the recipe, name everything, and build the SageMaker job requests the state machine
sends. The state machine adds only the job names, so a retried job gets a fresh one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.pipeline import images, naming, recipe_bundle, snapshot
from mlops_common.pipeline.data_formats import (
    CONFIG_FILE,
    DataFormatError,
    DetectedFormat,
    detect_format,
)
from mlops_common.pipeline.gate import Champion, find_champion
from mlops_common.pipeline.run_config import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    RunConfig,
    defaults_from_env,
    parse_overrides,
    resolve,
)
from mlops_common.pipeline.snapshot import Entry, ManifestError
from mlops_common.pipeline.stages import StageSettings, run_stages
from mlops_common.pipeline.trigger import TRAINING_PREFIX

PROCESSING = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING}/input/code"
VOLUME_GB = 30
RECIPES_PREFIX = "recipes"
_TEXT_SAMPLE_BYTES = 4096


class RunInputError(ValueError):
    """The execution input is not what start_run sends."""


class DatasetNotFoundError(ValueError):
    """The dataset's files are gone or empty; the message says where the run looked."""


class RecipeRequiredError(ValueError):
    """Non-tabular data without a recipe in pipeline.json; the message says what to add."""


@dataclass(frozen=True)
class Settings:
    """Where the run lives, from the function's environment."""

    stack_name: str
    region: str
    input_bucket: str
    output_bucket: str
    models_bucket: str
    defaults: dict[str, Any] = field(default_factory=dict)
    stages: StageSettings = field(default_factory=StageSettings)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        return cls(
            stack_name=env["STACK_NAME"],
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            input_bucket=env["INPUT_BUCKET"],
            output_bucket=env["OUTPUT_BUCKET"],
            models_bucket=env["MODELS_BUCKET"],
            defaults=defaults_from_env(env.get("PIPELINE_DEFAULTS")),
            stages=StageSettings.from_env(env),
        )


@dataclass(frozen=True)
class RunInput:
    run_id: str
    bucket: str
    dataset: str
    manifest: str
    trigger: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> RunInput:
        missing = [name for name in ("runId", "bucket", "dataset", "manifest") if not event.get(name)]
        if missing:
            raise RunInputError(
                f"execution input lacks {', '.join(missing)}; start runs by uploading to "
                "training/<dataset>/ (see events/pipeline_execution_input.json for the shape)"
            )
        return cls(
            run_id=event["runId"],
            bucket=event["bucket"],
            dataset=event["dataset"],
            manifest=event["manifest"],
            trigger=str(event.get("trigger") or "marker"),
        )


def list_keys(s3: Any, bucket: str, prefix: str) -> list[tuple[str, int]]:
    """(key, size) of every object under prefix, all pages."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [(obj["Key"], obj["Size"]) for obj in page.get("Contents", [])]
    return found


def _read_version(s3: Any, bucket: str, entry: Entry, byte_range: str | None = None) -> bytes:
    request: dict[str, Any] = {"Bucket": bucket, "Key": entry.key, "IfMatch": entry.etag}
    if entry.version_id:
        request["VersionId"] = entry.version_id
    if byte_range:
        request["Range"] = byte_range
    return bytes(s3.get_object(**request)["Body"].read())


def load_config(
    s3: Any, bucket: str, dataset: str, defaults: dict[str, Any], entries: list[Entry]
) -> tuple[RunConfig, bool]:
    """Template defaults overridden by the manifest's version of training/<dataset>/pipeline.json, if any."""
    config_files = [e for e in entries if e.split == snapshot.CONFIG]
    if not config_files:
        return resolve(defaults, {}), False
    key = f"{TRAINING_PREFIX}{dataset}/{CONFIG_FILE}"
    body = _read_version(s3, bucket, config_files[0])
    return resolve(defaults, parse_overrides(body, f"s3://{bucket}/{key}")), True


def data_entries(run: RunInput, entries: list[Entry]) -> list[Entry]:
    """The manifest's training files; none is an error that says where the run looked."""
    data = [e for e in entries if e.split == "training"]
    if not data:
        raise DatasetNotFoundError(
            f"s3://{run.bucket}/{TRAINING_PREFIX}{run.dataset}/ held no data files when the run started "
            f"(manifest {run.manifest}); upload the data first, then the _READY marker"
        )
    return data


def _text_sample(s3: Any, bucket: str, data: list[Entry]) -> str | None:
    text = [e for e in data if e.key.lower().endswith((".txt", ".text"))]
    if not text:
        return None
    body = _read_version(s3, bucket, text[0], f"bytes=0-{_TEXT_SAMPLE_BYTES - 1}")
    sample: str = body.decode("utf-8", errors="replace")
    return sample


# Non-tabular formats the default recipe trains on (class folders: training/<dataset>/<class>/<file>).
DEFAULT_RECIPE_FOLDER_FORMATS = ("image", "text")
# What endpoints of the default recipe accept, by data format (inference.py).
TABULAR_SERVING_TYPES = ["text/csv", "application/json"]
IMAGE_SERVING_TYPES = ["image/jpeg", "image/png", "application/x-image", "application/json"]


def default_recipe_trains(fmt: DetectedFormat) -> bool:
    return fmt.tabular or fmt.data_format in DEFAULT_RECIPE_FOLDER_FORMATS


def detect(s3: Any, run: RunInput, data: list[Entry], config: RunConfig) -> DetectedFormat:
    if config["data_format"] != "auto":
        fmt = config["data_format"]
        return DetectedFormat(fmt, detect_format([f"x.{fmt}"]).content_type, tabular=True)
    return detect_format([e.key for e in data], _text_sample(s3, run.bucket, data))


def custom_recipe_files(s3: Any, bucket: str, dataset: str, entry_point: str) -> dict[str, bytes]:
    prefix = f"{RECIPES_PREFIX}/{dataset}/"
    files = {
        key[len(prefix) :]: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key, size in list_keys(s3, bucket, prefix)
        if size > 0 and not key.endswith("/")
    }
    if entry_point not in files:
        raise RecipeRequiredError(
            f"pipeline.json names recipe.entry_point {entry_point!r}, but "
            f"s3://{bucket}/{prefix}{entry_point} does not exist; upload your recipe's code under s3://{bucket}/{prefix}"
        )
    return files


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
    run: RunInput,
    settings: Settings,
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
        {"Key": "mlops:stack", "Value": settings.stack_name},
        {"Key": "mlops:dataset", "Value": naming.safe_value(run.dataset)},
        {"Key": "mlops:run-id", "Value": run.run_id},
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
        "HyperParameters": hyperparameters(config, code, settings.region, scripts["train"]),
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


def ensure_experiment(
    sagemaker: Any, experiment: str, trial: str, dataset: str, *, run_id: str, manifest_uri: str
) -> None:
    """One experiment per dataset, one trial per run (tagged with the run's input manifest); both idempotent
    (a retried prepare reuses them)."""
    creates: tuple[Callable[[], Any], ...] = (
        lambda: sagemaker.create_experiment(
            ExperimentName=experiment, Description=f"Pipeline runs of dataset {dataset}"[:3072]
        ),
        lambda: sagemaker.create_trial(
            TrialName=trial,
            ExperimentName=experiment,
            Tags=[
                {"Key": "mlops:run-id", "Value": run_id},
                # Tag values: at most 256 characters; this URI: 5 + 63 + 1 + 5 + 63 + 1 + 80 + 14 = 232.
                {"Key": "mlops:input-manifest", "Value": manifest_uri},
            ],
        ),
    )
    for create in creates:
        try:
            create()
        except ClientError as error:
            message = error.response.get("Error", {}).get("Message", "")
            exists = error_code(error) == "ResourceInUse" or "already exist" in message
            if not exists:
                raise


def prepare_run(
    event: dict[str, Any],
    settings: Settings,
    s3: Any,
    sagemaker: Any,
    recipe_files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Everything the state machine needs for one run (stored at $.run)."""
    run = RunInput.from_event(event)
    if run.bucket != settings.input_bucket:
        raise RunInputError(f"runs read only the input bucket {settings.input_bucket}, not {run.bucket}")
    manifest, entries = snapshot.read_manifest(s3, run.manifest)
    if manifest["runId"] != run.run_id or manifest["dataset"] != run.dataset:
        raise ManifestError(f"{run.manifest} belongs to run {manifest['runId']}, not {run.run_id}")
    config, has_config_file = load_config(s3, run.bucket, run.dataset, settings.defaults, entries)
    data = data_entries(run, entries)
    fmt = detect(s3, run, data, config)
    if not default_recipe_trains(fmt) and config["recipe"] is None:
        raise RecipeRequiredError(
            f"training/{run.dataset}/ holds {fmt.data_format} data "
            f"({len(data)} file(s), e.g. {data[0].key}); "
            "the default recipe trains on CSV, Parquet, JSON Lines, LibSVM, images (JPEG/PNG) and .txt "
            "documents in class folders. To train on it, add to "
            f"training/{run.dataset}/{CONFIG_FILE}: "
            '{"recipe": {"image_uri": "<ECR image>", "entry_point": "<script>.py", "content_type": '
            f'"{fmt.content_type}"}}}} and upload the script under {RECIPES_PREFIX}/{run.dataset}/'
        )
    # Every job reads these copies of the manifest's versions, never the input bucket.
    inputs = snapshot.copy_snapshot(s3, manifest, entries, settings.output_bucket)
    if config["recipe"]:
        files = custom_recipe_files(s3, run.bucket, run.dataset, config["recipe"]["entry_point"])
        image = config["recipe"]["image_uri"]
        content_type = config["recipe"]["content_type"]
    else:
        files = recipe_files if recipe_files is not None else recipe_bundle.local_files()
        image = images.recipe_image(settings.region, config["image_uri"], config["sklearn_version"])
        content_type = fmt.content_type
    code = recipe_bundle.ensure_uploaded(s3, settings.models_bucket, files)

    base = naming.dataset_resource_name(settings.stack_name, run.dataset)
    stage_plan = run_stages(settings.stages, settings.stack_name, run.dataset, config.as_dict())
    names = {
        "jobPrefix": naming.run_prefix(settings.stack_name, run.dataset, run.run_id),
        "experiment": base,
        "trial": naming.trial_name(settings.stack_name, run.run_id),
        "modelPackageGroup": base,
        # The endpoint this run deploys to: the dataset's own, or its staging endpoint (docs/stages.md).
        "endpoint": stage_plan["endpoints"][stage_plan["first"] or naming.PROD],
    }
    run_path = snapshot.run_path(run.dataset, run.run_id)
    processed = f"s3://{settings.output_bucket}/{run_path}/processed"
    paths = {
        "data": inputs["training"],
        "train": f"{processed}/train/",
        "validation": f"{processed}/validation/",
        "test": f"{processed}/test/",
        "schema": f"{processed}/schema/",
        "evaluation": f"s3://{settings.output_bucket}/{run_path}/evaluation/",
        # evaluate.py writes the report beside evaluation.json.
        "report": f"s3://{settings.output_bucket}/{run_path}/evaluation/report/report.html",
        "model": f"s3://{settings.models_bucket}/{run_path}/training",
        "checkpoints": config["checkpoint_s3_uri"]
        or f"s3://{settings.models_bucket}/checkpoints/{run_path}/",
    }
    validation_uri = inputs.get("validation")
    test_uri = inputs.get("test")
    ensure_experiment(
        sagemaker,
        names["experiment"],
        names["trial"],
        run.dataset,
        run_id=run.run_id,
        manifest_uri=run.manifest,
    )
    # The champion as the run starts; the quality gate looks it up again when it decides.
    champion = find_champion(sagemaker, names["endpoint"]) if config["recipe"] is None else None
    jobs = build_jobs(
        run=run,
        settings=settings,
        config=config,
        fmt=fmt,
        data_uri=inputs["training"],
        validation_uri=validation_uri,
        test_uri=test_uri,
        code=code,
        image=image,
        names=names,
        paths=paths,
        champion=champion,
    )
    serving_types = IMAGE_SERVING_TYPES if fmt.data_format == "image" else TABULAR_SERVING_TYPES
    return {
        "runId": run.run_id,
        "dataset": run.dataset,
        "region": settings.region,
        "source": {"bucket": run.bucket, "manifest": run.manifest, "trigger": run.trigger},
        "config": config.as_dict(),
        "configFile": has_config_file,
        "data": {
            "format": fmt.data_format,
            "contentType": content_type,
            "tabular": fmt.tabular,
            "files": len(data),
            "validationProvided": validation_uri is not None,
            "testProvided": test_uri is not None,
            "servingContentTypes": [content_type] if config["recipe"] else serving_types,
        },
        "image": image,
        "code": {"hash": code.content_hash, "sourceDir": code.sourcedir_uri, "src": code.src_uri},
        "names": names,
        "paths": paths,
        "jobs": jobs,
        "stages": stage_plan,
    }


__all__ = [
    "DataFormatError",
    "DatasetNotFoundError",
    "ManifestError",
    "RecipeRequiredError",
    "RunInputError",
    "prepare_run",
]
