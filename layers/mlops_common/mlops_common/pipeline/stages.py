"""Stages: one endpoint per dataset (``single``), or a staging endpoint that soaks before the same model
package is promoted to prod (``staging-prod``; docs/stages.md).

With two stages the pipeline deploys to the staging endpoint, waits the soak, checks the staging endpoint's
invocation errors over that time in CloudWatch (``check_soak``), then either promotes at once (``automatic``)
or ends "staged" until a person runs ``mlops promote <dataset>`` (``start_promotion``). A promotion runs the
same deploy workflow on the prod endpoint with the package staging serves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import error_code
from mlops_common.pipeline import naming
from mlops_common.pipeline.deploy import VARIANT_NAME
from mlops_common.pipeline.gate import PACKAGE_TAG, find_champion
from mlops_common.pipeline.naming import PROD, STAGING

SINGLE, STAGING_PROD = "single", "staging-prod"
MODES = (SINGLE, STAGING_PROD)
MANUAL, AUTOMATIC = "manual", "automatic"
PROMOTION_MODES = (MANUAL, AUTOMATIC)
# Invocation errors a soak counts (AWS/SageMaker, per endpoint and variant): errors the container or the
# serving fleet returned. https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
SOAK_METRICS = ("Invocation5XXErrors", "InvocationModelErrors")
MAX_SOAK_MINUTES = 1440
# A promotion's deploy execution name. max: 60 (group slug) + 9 ("-promote-") + 11 = 80
_PROMOTION_HASH_LEN = 11


class SoakFailedError(RuntimeError):
    """The staging endpoint returned errors during its soak; the message says how many and what to do."""


class PromotionRefusedError(RuntimeError):
    """Nothing can be promoted now (no staged model, staging not InService, prod already serves it)."""


@dataclass(frozen=True)
class StageSettings:
    """The template's Stages, PromotionMode and StagingSoakMinutes parameters (PrepareRun's environment)."""

    mode: str = SINGLE
    promotion: str = MANUAL
    soak_minutes: int = 30

    @classmethod
    def from_env(cls, env: dict[str, str] | Any) -> StageSettings:
        """Fail closed: an unknown mode is a configuration error, never silently 'single'."""
        mode = env.get("STAGES") or SINGLE
        promotion = env.get("PROMOTION_MODE") or MANUAL
        soak = env.get("STAGING_SOAK_MINUTES") or "30"
        if mode not in MODES:
            raise ValueError(f"STAGES {mode!r} must be one of {', '.join(MODES)}")
        if promotion not in PROMOTION_MODES:
            raise ValueError(f"PROMOTION_MODE {promotion!r} must be one of {', '.join(PROMOTION_MODES)}")
        if not soak.isdigit() or not 0 <= int(soak) <= MAX_SOAK_MINUTES:
            raise ValueError(f"STAGING_SOAK_MINUTES {soak!r} must be a whole number 0-{MAX_SOAK_MINUTES}")
        return cls(mode, promotion, int(soak))


def run_stages(
    settings: StageSettings, stack_name: str, dataset: str, config: dict[str, Any]
) -> dict[str, Any]:
    """What the pipeline's stage states read (``$.run.stages``); present in every mode, so each Choice has
    its path. pipeline.json may set ``promotion_mode`` and ``staging_soak_minutes`` for one dataset."""
    if settings.mode == SINGLE:
        return {
            "mode": SINGLE,
            "first": None,
            "endpoints": {PROD: naming.stage_endpoint_name(stack_name, dataset)},
        }
    promotion = config.get("promotion_mode") or settings.promotion
    soak_minutes = config.get("staging_soak_minutes")
    soak = settings.soak_minutes if soak_minutes is None else int(soak_minutes)
    return {
        "mode": STAGING_PROD,
        "first": STAGING,
        "promotion": promotion,
        "soakSeconds": soak * 60,
        "endpoints": {
            STAGING: naming.stage_endpoint_name(stack_name, dataset, STAGING),
            PROD: naming.stage_endpoint_name(stack_name, dataset, PROD),
        },
    }


# ---------------------------------------------------------------- soak


@dataclass(frozen=True)
class SoakResult:
    endpoint: str
    seconds: int
    errors: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpointName": self.endpoint,
            "soakSeconds": self.seconds,
            "errors": self.errors,
            "passed": True,
        }


def soak_errors(
    cloudwatch: Any, endpoint: str, *, start: datetime, end: datetime, variant: str = VARIANT_NAME
) -> dict[str, float]:
    """Sum of each soak metric of the endpoint's variant from start to end (one period over the window)."""
    period = max(60, math.ceil((end - start).total_seconds() / 60) * 60)
    sums = {}
    for metric in SOAK_METRICS:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ],
            StartTime=start,
            EndTime=end,
            Period=period,
            Statistics=["Sum"],
        )["Datapoints"]
        sums[metric] = float(sum(point.get("Sum", 0.0) for point in points))
    return sums


def check_soak(cloudwatch: Any, endpoint: str, soak_seconds: int, *, now: datetime) -> SoakResult:
    """The soak just ended: any invocation error on the staging endpoint over it fails the run.

    The window is the configured soak back from now (the Wait state before this check lasted that long).
    SageMaker publishes its endpoint metrics once a minute, so errors of the soak's very last minute may not
    be readable yet: a longer soak makes that minute a smaller share.
    https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
    """
    start = now - timedelta(seconds=soak_seconds)
    errors = soak_errors(cloudwatch, endpoint, start=start, end=now)
    if any(errors.values()):
        found = ", ".join(f"{value:g} {name}" for name, value in errors.items() if value)
        raise SoakFailedError(
            f"staging endpoint {endpoint} returned errors during its {soak_seconds // 60}-minute soak "
            f"({found}, {start:%H:%M}-{now:%H:%M} UTC): not promoted, prod is unchanged. Its model keeps "
            "serving on staging; read the endpoint's logs (/aws/sagemaker/Endpoints/"
            f"{endpoint}), then upload a fixed dataset or roll staging back (mlops rollback)"
        )
    return SoakResult(endpoint, soak_seconds, errors)


# ---------------------------------------------------------------- promotion


@dataclass(frozen=True)
class StagedModel:
    """What a promotion would deploy: the package the staging endpoint serves, and what prod serves now."""

    dataset: str
    staging_endpoint: str
    prod_endpoint: str
    package_arn: str
    prod_package_arn: str | None

    def deploy_input(self) -> dict[str, Any]:
        return {
            "modelPackageArn": self.package_arn,
            "source": "promotion",
            "stage": PROD,
            "endpointName": self.prod_endpoint,
        }


def staged_model(sagemaker: Any, *, stack_name: str, dataset: str) -> StagedModel:
    """The model on the dataset's staging endpoint, ready to promote; refuses with what to do otherwise."""
    staging = naming.stage_endpoint_name(stack_name, dataset, STAGING)
    prod = naming.stage_endpoint_name(stack_name, dataset, PROD)
    try:
        described = sagemaker.describe_endpoint(EndpointName=staging)
    except ClientError as error:
        if error_code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        raise PromotionRefusedError(
            f"dataset {dataset} has no staging endpoint ({staging}): nothing to promote. A run that passes "
            f"the quality gate deploys to it (Stages=staging-prod); see mlops runs list --dataset {dataset}"
        ) from error
    if described["EndpointStatus"] != "InService":
        raise PromotionRefusedError(
            f"staging endpoint {staging} is {described['EndpointStatus']}, not InService: promote once it "
            "serves (mlops status)"
        )
    champion = find_champion(sagemaker, staging)
    if champion is None:
        raise PromotionRefusedError(
            f"staging endpoint {staging} serves no model that passed its smoke test (no "
            f"{PACKAGE_TAG} tag): nothing to promote"
        )
    serving_prod = find_champion(sagemaker, prod)
    prod_package = serving_prod.package_arn if serving_prod else None
    if prod_package == champion.package_arn:
        raise PromotionRefusedError(f"prod endpoint {prod} already serves {champion.package_arn}")
    return StagedModel(dataset, staging, prod, champion.package_arn, prod_package)


def promotion_execution_name(staged: StagedModel, requested_at: str) -> str:
    """One deploy execution per promotion request. max: 60 + 9 + 11 = 80"""
    token = naming.short_hash(f"{staged.package_arn}@{requested_at}", _PROMOTION_HASH_LEN)
    return f"{naming.slug(staged.prod_endpoint, 60)}-promote-{token}"


def start_promotion(
    sagemaker: Any,
    sfn: Any,
    *,
    deploy_state_machine_arn: str,
    stack_name: str,
    dataset: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Start the deploy workflow on the prod endpoint with the package staging serves."""
    staged = staged_model(sagemaker, stack_name=stack_name, dataset=dataset)
    name = promotion_execution_name(staged, (now or datetime.now(UTC)).isoformat())
    execution = sfn.start_execution(
        stateMachineArn=deploy_state_machine_arn, name=name, input=json.dumps(staged.deploy_input())
    )
    return {
        "dataset": dataset,
        "modelPackageArn": staged.package_arn,
        "fromModelPackageArn": staged.prod_package_arn,
        "stagingEndpoint": staged.staging_endpoint,
        "prodEndpoint": staged.prod_endpoint,
        "executionName": name,
        "executionArn": execution["executionArn"],
    }
