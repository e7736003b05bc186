"""moto-backed helpers for the cost guard tests: endpoints, notebooks, ages, tags, real CloudWatch data."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from mlops_common.cost_guard.settings import (
    HEARTBEAT_DIMENSION,
    HEARTBEAT_METRIC,
    HEARTBEAT_NAMESPACE,
    CommonSettings,
)

REGION = "us-east-1"
ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sagemaker"
BUCKET = "models-bucket"
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
# A fixed "now" for sweeps; metric data and ages are placed relative to it.
NOW = datetime.now(UTC).replace(microsecond=0)


def backend() -> Any:
    return sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]


@dataclass
class Aws:
    sagemaker: Any
    cloudwatch: Any
    s3: Any

    # ------------------------------------------------------------------ endpoints
    def endpoint(
        self,
        name: str,
        *,
        variants: tuple[str, ...] = ("AllTraffic",),
        age: timedelta = timedelta(days=3),
        tags: dict[str, str] | None = None,
        serverless: bool = False,
        async_inference: bool = False,
        instance_type: str = "ml.m5.large",
    ) -> str:
        model = f"{name}-model"
        self.sagemaker.create_model(
            ModelName=model,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{name}/model.tar.gz"},
        )
        production_variants = []
        for variant in variants:
            spec: dict[str, Any] = {"VariantName": variant, "ModelName": model, "InitialVariantWeight": 1.0}
            if serverless:
                spec["ServerlessConfig"] = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
            else:
                spec.update(InstanceType=instance_type, InitialInstanceCount=1)
            production_variants.append(spec)
        config: dict[str, Any] = {
            "EndpointConfigName": f"{name}-config",
            "ProductionVariants": production_variants,
        }
        if async_inference:
            config["AsyncInferenceConfig"] = {"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/async/"}}
        self.sagemaker.create_endpoint_config(**config)
        create: dict[str, Any] = {"EndpointName": name, "EndpointConfigName": f"{name}-config"}
        if tags:
            create["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        self.sagemaker.create_endpoint(**create)
        self.set_endpoint(name, created=NOW - age)
        return name

    def set_endpoint(self, name: str, *, created: datetime | None = None, status: str | None = None) -> None:
        fake = backend().endpoints[name]
        if created is not None:
            fake.creation_time = fake.last_modified_time = created
        if status is not None:
            fake.endpoint_status = status

    def invocations(self, endpoint: str, variant: str, count: float, at: datetime) -> None:
        self.cloudwatch.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {
                    "MetricName": "Invocations",
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": endpoint},
                        {"Name": "VariantName", "Value": variant},
                    ],
                    "Timestamp": at,
                    "Value": count,
                    "Unit": "None",
                }
            ],
        )

    def endpoint_names(self) -> set[str]:
        names: set[str] = set()
        for page in self.sagemaker.get_paginator("list_endpoints").paginate():
            names.update(e["EndpointName"] for e in page["Endpoints"])
        return names

    # ------------------------------------------------------------------ notebooks
    def notebook(
        self,
        name: str,
        *,
        started: timedelta = timedelta(hours=3),
        status: str = "InService",
        tags: dict[str, str] | None = None,
        instance_type: str = "ml.t3.medium",
    ) -> str:
        create: dict[str, Any] = {
            "NotebookInstanceName": name,
            "InstanceType": instance_type,
            "RoleArn": ROLE,
        }
        if tags:
            create["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        self.sagemaker.create_notebook_instance(**create)
        fake = backend().notebook_instances[name]
        fake.status = status
        fake.last_modified_time = NOW - started
        fake.creation_time = NOW - started - timedelta(days=1)
        return name

    def heartbeat(self, name: str, idle: timedelta, ago: timedelta = timedelta(minutes=2)) -> None:
        self.cloudwatch.put_metric_data(
            Namespace=HEARTBEAT_NAMESPACE,
            MetricData=[
                {
                    "MetricName": HEARTBEAT_METRIC,
                    "Dimensions": [{"Name": HEARTBEAT_DIMENSION, "Value": name}],
                    "Timestamp": NOW - ago,
                    "Value": idle.total_seconds(),
                    "Unit": "Seconds",
                }
            ],
        )

    def notebook_status(self, name: str) -> str:
        return self.sagemaker.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"]


COMMON = CommonSettings(dry_run=False, environment="dev", scope="", topic_arn="", region=REGION)


def with_common(settings: Any, **changes: Any) -> Any:
    """The same settings with CommonSettings fields changed (dry_run, environment, scope)."""
    return replace(settings, common=replace(settings.common, **changes))


def fail_for(
    client: Any,
    operation: str,
    *,
    code: str = "ValidationException",
    message: str = "the resource changed",
    **resource: str,
) -> Stubber:
    """Make one client operation fail for one resource (an error moto cannot produce); others reach moto."""
    ((param, name),) = resource.items()
    failing = boto3.client(client.meta.service_model.service_name, region_name=REGION)
    stubber = Stubber(failing)
    stubber.add_client_error(
        operation, service_error_code=code, service_message=message, expected_params={param: name}
    )
    stubber.activate()
    real = getattr(client, operation)

    def routed(**kwargs: Any) -> Any:
        if kwargs.get(param) == name:
            return getattr(failing, operation)(**kwargs)
        return real(**kwargs)

    setattr(client, operation, routed)
    return stubber
