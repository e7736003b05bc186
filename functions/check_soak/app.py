"""Staging soak check: invocation errors of the staging endpoint over the soak that just ended."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import stages
from mlops_common.step_values import SoakCheck, SoakCheckInput, parse

logger = Logger(service="pipeline-check-soak")


@logger.inject_lambda_context(correlation_id_path="runId")
def lambda_handler(event: SoakCheckInput, context: LambdaContext) -> SoakCheck:
    """event: {"runId": ..., "endpointName": <staging endpoint>, "soakSeconds": <the Wait's seconds>}.
    Errors during the soak raise SoakFailedError (the pipeline's Catch notifies its message)."""
    event = parse(SoakCheckInput, event, what="check_soak input")
    result = stages.check_soak(
        client("cloudwatch"),
        event["endpointName"],
        event["soakSeconds"],
        now=datetime.now(UTC),
    )
    logger.info("soak passed", extra=result.as_dict())
    return parse(SoakCheck, result.as_dict(), what="check_soak result")
