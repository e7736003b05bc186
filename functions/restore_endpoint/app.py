"""On demand: recreate an endpoint the cost guard deleted. Invoke with {"endpoint_name": "<name>"}."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.cost_guard.endpoints import RestoreError, restore_endpoint
from mlops_common.step_values import RestoreRequest, StepInputError, parse

logger = Logger(service="cost-guard-restore")


@logger.inject_lambda_context(correlation_id_path="endpoint_name")
def lambda_handler(event: RestoreRequest, context: LambdaContext) -> dict[str, Any]:
    try:
        event = parse(RestoreRequest, event, what="restore_endpoint input")
    except StepInputError as error:
        raise RestoreError(
            f'{error}; invoke with {{"endpoint_name": "<name of an endpoint the cost guard deleted>"}}'
        ) from None
    try:
        result = restore_endpoint(
            client("sagemaker"),
            client("s3"),
            os.environ["RESTORE_BUCKET"],
            event["endpoint_name"],
            datetime.now(UTC),
        )
    except RestoreError as error:
        logger.error("restore refused", extra={"reason": str(error)})
        raise
    logger.info("restore", extra={"restore": asdict(result)})
    return asdict(result)
