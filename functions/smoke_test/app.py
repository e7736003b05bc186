"""Smoke test: raw rows of the test split through the endpoint; answers far from the true labels (or
malformed ones) fail the deployment."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import smoke
from mlops_common.step_values import SmokeResult, SmokeTestInput, parse

logger = Logger(service="deploy-smoke-test")


@logger.inject_lambda_context(correlation_id_path="packageArn")
def lambda_handler(event: SmokeTestInput, context: LambdaContext) -> SmokeResult:
    event = parse(SmokeTestInput, event, what="smoke_test input")
    settings = event["smoke"]
    test_prefix, schema_prefix = settings["testDataUri"], settings["schemaUri"]
    if not test_prefix or not schema_prefix:
        logger.warning("no test split recorded on the package: smoke test skipped")
        return {"endpointName": event["endpointName"], "rows": 0, "skipped": True}
    result = smoke.run(
        client("s3"),
        client("sagemaker-runtime"),
        endpoint=event["endpointName"],
        test_prefix=test_prefix,
        schema_prefix=schema_prefix,
        count=settings["rows"],
        metrics=settings["metrics"],
    )
    logger.info("smoke test passed", extra=result)
    return parse(SmokeResult, result, what="smoke_test result")
