"""Take the endpoint's rollout lease, gate again against the serving model, plan create or update."""

from __future__ import annotations

import os
import time

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import deploy
from mlops_common.step_values import DeployPlan, PrepareDeploymentInput, parse

logger = Logger(service="deploy-prepare")


@logger.inject_lambda_context(correlation_id_path="input.modelPackageArn")
def lambda_handler(event: PrepareDeploymentInput, context: LambdaContext) -> DeployPlan:
    """event: {"input": <the deploy workflow's input>, "executionArn": <this deploy execution>}"""
    event = parse(PrepareDeploymentInput, event, what="prepare_deployment input")
    request = deploy.DeployRequest.from_input(event["input"])
    plan = deploy.prepare(
        client("sagemaker"),
        client("cloudwatch"),
        client("dynamodb"),
        client("stepfunctions"),
        request,
        stack_name=os.environ["STACK_NAME"],
        lease_table=os.environ["COORDINATION_TABLE"],
        execution_arn=event["executionArn"],
        now=int(time.time()),
    )
    logger.info(
        "deployment prepared",
        extra={k: plan.get(k) for k in ("endpointName", "status", "action", "heldBy", "reason")},
    )
    return parse(DeployPlan, plan, what="prepare_deployment result")
