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

logger = Logger(service="cost-guard-restore")


@logger.inject_lambda_context(correlation_id_path="endpoint_name")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not isinstance(event, dict) or "endpoint_name" not in event:
        raise RestoreError('invoke with {"endpoint_name": "<name of an endpoint the cost guard deleted>"}')
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
