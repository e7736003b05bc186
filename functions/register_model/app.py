"""Register the accepted model in the dataset's model package group."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import registry
from mlops_common.step_values import RegisterModelInput, Registration, parse

logger = Logger(service="pipeline-register-model")


@logger.inject_lambda_context(correlation_id_path="run.runId")
def lambda_handler(event: RegisterModelInput, context: LambdaContext) -> Registration:
    request = parse(RegisterModelInput, event, what="register_model input")
    result = registry.register(
        client("sagemaker"),
        run=request["run"],
        model_data_url=request["modelDataUrl"],
        evaluation_uri=request["gate"]["evaluationUri"],
        metrics=request["gate"]["metrics"],
        gate=request["gate"],
        stack_name=os.environ["STACK_NAME"],
    )
    logger.info("model registered", extra=result)
    return parse(Registration, result, what="register_model result")
