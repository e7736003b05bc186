"""Register the accepted model in the dataset's model package group."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import registry

logger = Logger(service="pipeline-register-model")


@logger.inject_lambda_context(correlation_id_path="run.runId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = registry.register(
        client("sagemaker"),
        run=event["run"],
        model_data_url=event["modelDataUrl"],
        evaluation_uri=event["gate"]["evaluationUri"],
        metrics=event["gate"]["metrics"],
        gate=event["gate"],
        stack_name=os.environ["STACK_NAME"],
    )
    logger.info("model registered", extra=result)
    return result
