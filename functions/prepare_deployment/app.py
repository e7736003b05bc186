"""Plan a deployment of an Approved model package: create or update, rollout, alarms, wait budget."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import deploy

logger = Logger(service="deploy-prepare")


@logger.inject_lambda_context(correlation_id_path="modelPackageArn")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not event.get("modelPackageArn"):
        raise deploy.PackageNotDeployableError('input must be {"modelPackageArn": "arn:aws:sagemaker:..."}')
    plan = deploy.plan(
        client("sagemaker"),
        client("cloudwatch"),
        event["modelPackageArn"],
        os.environ["STACK_NAME"],
        event.get("source", "pipeline"),
    )
    logger.info("deployment planned", extra={k: plan[k] for k in ("endpointName", "action", "serverless")})
    return plan
