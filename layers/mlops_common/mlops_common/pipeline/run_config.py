"""Run configuration: template defaults (env PIPELINE_DEFAULTS) < training/<dataset>/pipeline.json.

Every field is checked; a bad value fails the run at once with a message naming the field and what to write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_common.pipeline import images

PROBLEM_TYPES = ("auto", "binary_classification", "multiclass_classification", "regression")
DATA_FORMATS = ("auto", "csv", "parquet", "jsonl", "libsvm", "image", "text")
ALGORITHMS = ("auto", "random_forest", "gradient_boosting", "linear")
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
ROLLOUTS = ("all_at_once", "canary", "linear")
_INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_IMAGE = re.compile(
    r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$"
)
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
# SageMaker limits: MaxRuntimeInSeconds up to 777,600 (9 days) for processing jobs (training allows 28 days,
# but one value stops every job of a run); serverless memory 1024-6144 in 1 GB steps, concurrency 1-200;
# blue/green WaitIntervalInSeconds 0-3600.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingStoppingCondition.html
MAX_RUNTIME_LIMIT = 777_600
SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
# A run starts once its dataset's folders have been quiet this long (pipeline/batching.py); at most a day.
MAX_QUIET_SECONDS = 86_400
KNOWN_HYPERPARAMETERS = ("algorithm", "n_estimators", "max_depth", "learning_rate", "seed")


class InvalidConfigError(ValueError):
    """pipeline.json (or a template default) is invalid; the message names the field."""


def _problem(field: str, message: str) -> InvalidConfigError:
    return InvalidConfigError(f"pipeline.json field '{field}': {message}")


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> Any:
        normalized = value.lower().replace("-", "_") if isinstance(value, str) else value
        if normalized not in options:
            raise _problem(field, f"{value!r} is not one of {', '.join(options)}")
        return normalized

    return check


def _integer(low: int, high: int) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _problem(field, f"expected a whole number from {low} to {high}, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise _problem(field, f"expected a whole number from {low} to {high}, got {value!r}") from None
        if not low <= number <= high:
            raise _problem(field, f"{number} is outside {low}..{high}")
        return number

    return check


def _number(low: float, high: float) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise _problem(field, f"expected a number from {low} to {high}, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _problem(field, f"expected a number from {low} to {high}, got {value!r}") from None
        if not low <= number <= high:
            raise _problem(field, f"{number} is outside {low}..{high}")
        return number

    return check


def _boolean(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _problem(field, f"expected true or false, got {value!r}")


def _pattern(regex: re.Pattern[str], example: str) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> Any:
        if not isinstance(value, str) or not regex.match(value):
            raise _problem(field, f"{value!r} is not valid; expected something like {example}")
        return value

    return check


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def optional(field: str, value: Any) -> Any:
        return None if value in (None, "", "auto") else check(field, value)

    return optional


def _target_column(field: str, value: Any) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise _problem(field, f"expected a column name or a 0-based column index, got {value!r}")
    if isinstance(value, int) and value < 0:
        raise _problem(field, f"a column index starts at 0, got {value}")
    return value


def _metric(field: str, value: Any) -> str | None:
    if value in (None, "", "auto"):
        return None
    known = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
    if value not in known:
        raise _problem(field, f"{value!r} is not one of {', '.join(known)}")
    return str(value)


def _hyperparameters(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _problem(field, f'expected an object like {{"n_estimators": 200}}, got {value!r}')
    result = {}
    for name, hp in value.items():
        if not isinstance(hp, str | int | float) or isinstance(hp, bool):
            raise _problem(f"{field}.{name}", f"expected a string or a number, got {hp!r}")
        result[str(name)] = str(hp)
    return result


def _column_names(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise _problem(field, f'expected a list of column names like ["review"], got {value!r}')
    return list(value)


def _sklearn_version(field: str, value: Any) -> str:
    try:
        return images.sklearn_version(str(value)).version
    except images.UnsupportedVersionError as error:
        raise _problem(field, str(error)) from None


def _recipe(field: str, value: Any) -> dict[str, str] | None:
    if value in (None, {}):
        return None
    required = ("image_uri", "entry_point", "content_type")
    if not isinstance(value, dict) or any(
        not isinstance(value.get(k), str) or not value[k] for k in required
    ):
        raise _problem(
            field,
            'expected {"image_uri": "<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>", '
            '"entry_point": "train.py", "content_type": "application/x-image"}',
        )
    unknown = sorted(set(value) - set(required))
    if unknown:
        raise _problem(f"{field}.{unknown[0]}", f"unknown; known fields: {', '.join(required)}")
    _pattern(_IMAGE, "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-image:1")(
        f"{field}.image_uri", value["image_uri"]
    )
    return {k: value[k] for k in required}


_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "target_column": _target_column,
    "problem_type": _choice(PROBLEM_TYPES),
    "data_format": _choice(DATA_FORMATS),
    "text_columns": _column_names,
    "hyperparameters": _hyperparameters,
    "processing_instance_type": _pattern(_INSTANCE, "ml.m5.large"),
    "training_instance_type": _pattern(_INSTANCE, "ml.m5.large"),
    "training_instance_count": _integer(1, 100),
    "managed_spot": _boolean,
    "checkpoint_s3_uri": _optional(_pattern(_S3_URI, "s3://my-bucket/checkpoints/")),
    "max_runtime_seconds": _integer(60, MAX_RUNTIME_LIMIT),
    "max_wait_seconds": _optional(_integer(60, MAX_RUNTIME_LIMIT)),
    "metric": _metric,
    "threshold": _optional(_number(-1e12, 1e12)),
    "approval_mode": _choice(("auto", "manual")),
    "deploy_mode": _choice(("serverless", "instance")),
    "endpoint_instance_type": _pattern(_INSTANCE, "ml.m5.large"),
    "endpoint_instance_count": _integer(1, 100),
    "serverless_memory_mb": _integer(1024, 6144),
    "serverless_max_concurrency": _integer(1, 200),
    "rollout": _choice(ROLLOUTS),
    "rollout_step_percent": _integer(1, 50),
    "rollout_wait_seconds": _integer(0, 3600),
    "endpoint_wait_seconds": _integer(1, 3600),
    "max_invalid_row_fraction": _number(0.0, 1.0),
    "train_fraction": _number(0.05, 0.98),
    "validation_fraction": _number(0.01, 0.5),
    "seed": _integer(0, 2**31 - 1),
    "image_uri": _optional(
        _pattern(_IMAGE, "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3")
    ),
    "sklearn_version": _optional(_sklearn_version),
    "recipe": _recipe,
    "smoke_test_rows": _integer(1, 100),
    "dataset_quiet_seconds": _integer(1, MAX_QUIET_SECONDS),
    # Stages=staging-prod only (docs/stages.md); None: the template's PromotionMode / StagingSoakMinutes.
    "promotion_mode": _optional(_choice(("manual", "automatic"))),
    "staging_soak_minutes": _optional(_integer(0, 1440)),
}

BUILT_IN_DEFAULTS: dict[str, Any] = {
    "target_column": "label",
    "problem_type": "auto",
    "data_format": "auto",
    "text_columns": [],
    "hyperparameters": {},
    "processing_instance_type": "ml.m5.large",
    "training_instance_type": "ml.m5.large",
    "training_instance_count": 1,
    "managed_spot": False,
    "checkpoint_s3_uri": None,
    "max_runtime_seconds": 3600,
    "max_wait_seconds": None,
    "metric": None,
    "threshold": None,
    "approval_mode": "auto",
    "deploy_mode": "serverless",
    "endpoint_instance_type": "ml.m5.large",
    "endpoint_instance_count": 1,
    "serverless_memory_mb": 2048,
    "serverless_max_concurrency": 5,
    "rollout": "all_at_once",
    "rollout_step_percent": 20,
    "rollout_wait_seconds": 300,
    "endpoint_wait_seconds": 30,
    "max_invalid_row_fraction": 0.05,
    "train_fraction": 0.8,
    "validation_fraction": 0.1,
    "seed": 42,
    "image_uri": None,
    "sklearn_version": None,
    "recipe": None,
    "smoke_test_rows": 50,
    "dataset_quiet_seconds": 120,
    "promotion_mode": None,
    "staging_soak_minutes": None,
}


@dataclass(frozen=True)
class RunConfig:
    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def parse_overrides(text: str | bytes, source: str = "pipeline.json") -> dict[str, Any]:
    """The JSON object in pipeline.json, or a clear error."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidConfigError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidConfigError(f'{source} must hold a JSON object like {{"target_column": "label"}}')
    return data


def resolve(defaults: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    """Built-in defaults < template defaults < pipeline.json; each value validated and normalized."""
    for source in (defaults, overrides):
        unknown = sorted(set(source) - set(_FIELDS))
        if unknown:
            raise _problem(unknown[0], f"unknown field; known fields: {', '.join(sorted(_FIELDS))}")
    merged = {**BUILT_IN_DEFAULTS, **defaults, **overrides}
    values = {name: check(name, merged[name]) for name, check in _FIELDS.items()}
    _check_together(values)
    return RunConfig(values)


def _check_together(values: dict[str, Any]) -> None:
    unknown_hps = sorted(set(values["hyperparameters"]) - set(KNOWN_HYPERPARAMETERS))
    if unknown_hps and values["recipe"] is None:
        raise _problem(
            f"hyperparameters.{unknown_hps[0]}",
            f"the default recipe does not know it; known: {', '.join(KNOWN_HYPERPARAMETERS)}",
        )
    algorithm = values["hyperparameters"].get("algorithm")
    if algorithm is not None and values["recipe"] is None and algorithm not in ALGORITHMS:
        raise _problem("hyperparameters.algorithm", f"{algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    if values["train_fraction"] + values["validation_fraction"] >= 1.0:
        raise _problem("validation_fraction", "train_fraction + validation_fraction must leave rows for test")
    if values["serverless_memory_mb"] not in SERVERLESS_MEMORY:
        raise _problem("serverless_memory_mb", f"must be one of {', '.join(map(str, SERVERLESS_MEMORY))}")
    if values["managed_spot"]:
        wait = values["max_wait_seconds"] or 2 * values["max_runtime_seconds"]
        if wait < values["max_runtime_seconds"]:
            # https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StoppingCondition.html
            raise _problem("max_wait_seconds", "with managed_spot it must be at least max_runtime_seconds")
        values["max_wait_seconds"] = min(wait, MAX_RUNTIME_LIMIT)
    stepped = values["deploy_mode"] == "instance" and values["rollout"] != "all_at_once"
    if stepped and values["endpoint_instance_count"] < 2:
        raise _problem(
            "rollout",
            f"{values['rollout']} shifts traffic in steps of at most 50% of the instances, so it needs "
            "endpoint_instance_count of 2 or more; use all_at_once or add instances",
        )
    metric = values["metric"]
    problem = values["problem_type"]
    if metric and problem == "regression" and metric not in REGRESSION_METRICS:
        raise _problem(
            "metric", f"{metric} is a classification metric; use one of {', '.join(REGRESSION_METRICS)}"
        )
    if metric and problem.endswith("classification") and metric not in CLASSIFICATION_METRICS:
        raise _problem(
            "metric", f"{metric} is a regression metric; use one of {', '.join(CLASSIFICATION_METRICS)}"
        )
    if metric == "roc_auc" and problem == "multiclass_classification":
        raise _problem("metric", "roc_auc is computed for binary classification only")


def defaults_from_env(text: str | None) -> dict[str, Any]:
    """Template parameters arrive as one JSON object (env PIPELINE_DEFAULTS); empty strings mean 'not set'."""
    if not text:
        return {}
    data = parse_overrides(text, "PIPELINE_DEFAULTS")
    return {k: v for k, v in data.items() if v != ""}


def metric_and_threshold(config: RunConfig, problem_type: str) -> tuple[str, float | None]:
    """The gate's metric (default accuracy / rmse by problem type) and threshold (None: champion only)."""
    family = "regression" if problem_type == "regression" else "classification"
    return config["metric"] or DEFAULT_METRIC[family], config["threshold"]


def quiet_seconds(defaults: dict[str, Any], config_file: bytes | None) -> tuple[int, str | None]:
    """The dataset's quiet time: pipeline.json's dataset_quiet_seconds, else the template default.

    Lenient on purpose: the trigger must not drop uploads over a bad pipeline.json. A problem is returned (to
    log) and the default used; the run then fails in PrepareRun with the full message.
    """
    check = _FIELDS["dataset_quiet_seconds"]
    default = check("dataset_quiet_seconds", defaults.get("dataset_quiet_seconds", 120))
    if not config_file:
        return default, None
    try:
        overrides = parse_overrides(config_file)
        if "dataset_quiet_seconds" not in overrides:
            return default, None
        return check("dataset_quiet_seconds", overrides["dataset_quiet_seconds"]), None
    except InvalidConfigError as error:
        return default, str(error)
