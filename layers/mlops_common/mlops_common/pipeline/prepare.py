"""Prepare a run: read its manifest (written by start_run), copy exactly the listed object versions into
the run's folder (every job reads only those copies), resolve its configuration from the listed pipeline.json,
look at its data, upload the recipe, name everything, and build the SageMaker job requests the state machine
sends. The state machine adds only the job names, so a retried job gets a fresh one.

This module puts the steps in order; what is read from S3 is in run_inputs, the job requests in job_requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.pipeline import images, naming, recipe_bundle, snapshot
from mlops_common.pipeline.data_formats import CONFIG_FILE, DataFormatError
from mlops_common.pipeline.gate import find_champion
from mlops_common.pipeline.job_requests import build_jobs, default_recipe_trains
from mlops_common.pipeline.run_config import defaults_from_env
from mlops_common.pipeline.run_inputs import (
    RECIPES_PREFIX,
    RecipeRequiredError,
    custom_recipe_files,
    detect,
    load_config,
)
from mlops_common.pipeline.snapshot import Entry, ManifestError
from mlops_common.pipeline.stages import StageSettings, run_stages
from mlops_common.pipeline.trigger import TRAINING_PREFIX


class RunInputError(ValueError):
    """The execution input is not what start_run sends."""


class DatasetNotFoundError(ValueError):
    """The dataset's files are gone or empty; the message says where the run looked."""


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


def data_entries(run: RunInput, entries: list[Entry]) -> list[Entry]:
    """The manifest's training files; none is an error that says where the run looked."""
    data = [e for e in entries if e.split == "training"]
    if not data:
        raise DatasetNotFoundError(
            f"s3://{run.bucket}/{TRAINING_PREFIX}{run.dataset}/ held no data files when the run started "
            f"(manifest {run.manifest}); upload the data first, then the _READY marker"
        )
    return data


# What endpoints of the default recipe accept, by data format (inference.py).
TABULAR_SERVING_TYPES = ["text/csv", "application/json"]
IMAGE_SERVING_TYPES = ["image/jpeg", "image/png", "application/x-image", "application/json"]


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
    fmt = detect(s3, run.bucket, data, config)
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
        stack_name=settings.stack_name,
        region=settings.region,
        dataset=run.dataset,
        run_id=run.run_id,
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
