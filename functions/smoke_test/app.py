"""Smoke test: raw rows of the test split through the endpoint; answers far from the true labels (or
malformed ones) fail the deployment."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import smoke

logger = Logger(service="deploy-smoke-test")


@logger.inject_lambda_context(correlation_id_path="packageArn")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = event["smoke"]
    if not settings.get("testDataUri") or not settings.get("schemaUri"):
        logger.warning("no test split recorded on the package: smoke test skipped")
        return {"endpointName": event["endpointName"], "rows": 0, "skipped": True}
    result = smoke.run(
        client("s3"),
        client("sagemaker-runtime"),
        endpoint=event["endpointName"],
        test_prefix=settings["testDataUri"],
        schema_prefix=settings["schemaUri"],
        count=int(settings.get("rows", 50)),
        metrics=settings.get("metrics") or {},
    )
    logger.info("smoke test passed", extra=result)
    return result
