"""Quality gate: the challenger's metric must meet the threshold and must not be worse than the champion,
the model package currently serving the dataset's endpoint (found through the endpoint's tag).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.recipe.recipe_common import LOWER_IS_BETTER  # the recipe owns metric direction

PACKAGE_TAG = "mlops:model-package-arn"
METRIC_PROPERTY_PREFIX = "metric:"


class EvaluationError(ValueError):
    """evaluation.json is missing or lacks the gate's metric; the message says which."""


@dataclass(frozen=True)
class Champion:
    package_arn: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class GateResult:
    passed: bool
    metric: str
    value: float
    threshold: float | None
    champion_value: float | None
    champion_package_arn: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as the workflow carries them (camelCase, step_values.GateDecision)."""
        return {
            "passed": self.passed,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "championValue": self.champion_value,
            "championPackageArn": self.champion_package_arn,
            "reason": self.reason,
        }


def read_evaluation(s3: Any, evaluation_prefix: str) -> tuple[str, dict[str, Any]]:
    """(URI, content) of evaluation.json under the evaluation job's output prefix."""
    uri = evaluation_prefix.rstrip("/") + "/evaluation.json"
    parsed = urlparse(uri)
    try:
        body = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    except ClientError as error:
        raise EvaluationError(f"the evaluation job wrote no {uri}: {error}") from None
    try:
        evaluation = json.loads(body)
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{uri} is not JSON: {error}") from None
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("metrics"), dict):
        raise EvaluationError(
            f'{uri} has no "metrics" object (the evaluation script writes {{"metrics": {{name: value}}}})'
        )
    return uri, evaluation


def find_champion(sagemaker: Any, endpoint_name: str) -> Champion | None:
    """The package serving the endpoint and its recorded metrics, or None (no endpoint, or untagged)."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if error_code(error) in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    pages = sagemaker.get_paginator("list_tags").paginate(ResourceArn=endpoint["EndpointArn"])
    tags = (tag for page in pages for tag in page.get("Tags", []))
    package_arn = next((t["Value"] for t in tags if t["Key"] == PACKAGE_TAG), None)
    if not package_arn:
        return None
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    return Champion(package_arn, recorded_metrics(package.get("CustomerMetadataProperties", {})))


def recorded_metrics(properties: dict[str, str]) -> dict[str, float]:
    """The test metrics registered on a package's metadata (unreadable values are left out)."""
    metrics = {}
    for key, value in properties.items():
        if key.startswith(METRIC_PROPERTY_PREFIX):
            try:
                metrics[key[len(METRIC_PROPERTY_PREFIX) :]] = float(value)
            except ValueError:
                continue
    return metrics


def decide(
    metrics: dict[str, Any], metric: str, threshold: float | None, champion: Champion | None
) -> GateResult:
    """Pass when the metric meets the threshold and is not worse than the champion's (ties pass)."""
    if metric not in metrics:
        raise EvaluationError(
            f"evaluation.json has no metric {metric!r} (it has {', '.join(sorted(metrics)) or 'none'}); "
            "set metric in pipeline.json to one of those"
        )
    value = float(metrics[metric])
    lower = metric in LOWER_IS_BETTER
    better_or_equal: Callable[[float, float], bool] = (
        (lambda a, b: a <= b) if lower else (lambda a, b: a >= b)
    )
    relation = "at most" if lower else "at least"
    champion_value = champion.metrics.get(metric) if champion else None
    if math.isnan(value):
        passed, reason = False, f"{metric} is NaN: the model could not be evaluated on the test split"
    elif threshold is not None and not better_or_equal(value, threshold):
        passed, reason = (
            False,
            f"{metric} {value:.6g} does not meet the threshold: it must be {relation} {threshold:g}",
        )
    elif champion_value is not None and not better_or_equal(value, champion_value):
        passed = False
        reason = (
            f"{metric} {value:.6g} is worse than the serving model's {champion_value:.6g} "
            f"({champion.package_arn if champion else ''})"
        )
    else:
        passed = True
        parts = [f"{metric} {value:.6g}"]
        parts.append(f"meets {relation} {threshold:g}" if threshold is not None else "no threshold set")
        parts.append(
            f"not worse than the serving model's {champion_value:.6g}"
            if champion_value is not None
            else "no serving model to compare with"
        )
        reason = ", ".join(parts)
    return GateResult(
        passed=passed,
        metric=metric,
        value=value,
        threshold=threshold,
        champion_value=champion_value,
        champion_package_arn=champion.package_arn if champion else None,
        reason=reason,
    )


def package_metric(properties: dict[str, str]) -> tuple[str, float] | None:
    """(gate metric, value) a registered package recorded, or None (registered without one)."""
    metric = properties.get("gate-metric")
    try:
        return (metric, float(properties[f"{METRIC_PROPERTY_PREFIX}{metric}"])) if metric else None
    except (KeyError, ValueError):
        return None


def recheck_champion(
    sagemaker: Any, endpoint_name: str, package_arn: str, properties: dict[str, str]
) -> GateResult | None:
    """The gate again, against the champion as it is now (when the rollout begins): another run may have
    deployed a better model since this one was gated. None when there is nothing to compare."""
    recorded = package_metric(properties)
    if recorded is None:
        return None
    champion = find_champion(sagemaker, endpoint_name)
    if champion is None or champion.package_arn == package_arn or recorded[0] not in champion.metrics:
        return None
    metric, value = recorded
    return decide({metric: value}, metric, None, champion)
