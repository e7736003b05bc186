"""Every exit of the deploy workflow: release the endpoint's rollout lease, tag the package with the
outcome."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import deploy
from mlops_common.step_values import DeploymentFinish, FinishDeploymentInput, parse

logger = Logger(service="deploy-finish")


@logger.inject_lambda_context(correlation_id_path="executionArn")
def lambda_handler(event: FinishDeploymentInput, context: LambdaContext) -> DeploymentFinish:
    """event: {"outcome": "deployed"|"failed"|"superseded", "state": <the workflow's state>,
    "executionArn": <this deploy execution>}"""
    event = parse(FinishDeploymentInput, event, what="finish_deployment input")
    result = deploy.finish(
        client("sagemaker"),
        client("dynamodb"),
        outcome=event["outcome"],
        state=dict(event["state"]),
        lease_table=os.environ["COORDINATION_TABLE"],
        execution_arn=event["executionArn"],
    )
    logger.info("deployment finished", extra=result)
    return parse(DeploymentFinish, result, what="finish_deployment result")
