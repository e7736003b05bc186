"""S3 'Object Created' under inference/ (EventBridge) -> one batch execution per triggering object
version (convention: docs/batch.md). Ignored objects and redelivered events are logged with the reason,
never raised."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from mlops_common.aws import client
from mlops_common.batch import starter
from mlops_common.pipeline.trigger import EventShapeError, parse_events

logger = Logger(service="batch-start")
metrics = Metrics(service="batch")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        objects = parse_events(event)
    except EventShapeError as error:
        logger.warning("ignored event", extra={"reason": str(error)})
        return {"results": [{"outcome": starter.IGNORED, "reason": str(error)}]}
    results = []
    for obj in objects:
        try:
            result = starter.start_for_event(
                obj,
                sfn=client("stepfunctions"),
                s3=client("s3"),
                state_machine_arn=os.environ["BATCH_STATE_MACHINE_ARN"],
                input_bucket=os.environ["INPUT_BUCKET"],
            )
        except ClientError:
            # Raised again so Lambda's async retries and the rule's RetryPolicy deliver the event again.
            logger.exception("could not start the batch; the event will be retried", extra={"key": obj.key})
            raise
        if result["outcome"] == starter.STARTED:
            metrics.add_metric(name="BatchesStarted", unit=MetricUnit.Count, value=1)
        logger.info(f"batch {result['outcome']}", extra=result)
        results.append(result)
    return {"results": results}
