"""Every exit of the deploy workflow: release the endpoint's rollout lease, tag the package with the
outcome."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import deploy

logger = Logger(service="deploy-finish")


@logger.inject_lambda_context(correlation_id_path="executionArn")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """event: {"outcome": "deployed"|"failed"|"superseded", "state": <the workflow's state>,
    "executionArn": <this deploy execution>}"""
    result = deploy.finish(
        client("sagemaker"),
        client("dynamodb"),
        outcome=event["outcome"],
        state=event.get("state") or {},
        lease_table=os.environ["COORDINATION_TABLE"],
        execution_arn=event["executionArn"],
    )
    logger.info("deployment finished", extra=result)
    return result
