"""S3 'Object Created' (EventBridge) under a dataset's folders -> one run per upload batch (docs/pipeline.md).

Two callers: EventBridge (uploads and markers, asynchronously; failures go to the dead-letter queue after
Lambda's retries) and the batch waiter state machine (``{"quietCheck": {...}}``, synchronously).
Ignored objects, recorded uploads and identical content are logged with the reason, never raised.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from mlops_common.aws import client
from mlops_common.pipeline import starter, trigger
from mlops_common.step_values import BatchWaiterState, QuietCheckInput, parse

logger = Logger(service="pipeline-start-run")
metrics = Metrics(service="pipeline")


def _clients() -> starter.Clients:
    return starter.Clients(s3=client("s3"), sfn=client("stepfunctions"), ddb=client("dynamodb"))


def _log(result: dict[str, Any]) -> None:
    outcome = result.get("outcome")
    nested = result.get("run")
    run: dict[str, Any] = nested if isinstance(nested, dict) else result
    if run.get("outcome") == starter.STARTED:
        logger.set_correlation_id(run["executionName"])
        metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)
        logger.info("run started", extra=result)
    elif run.get("outcome") == starter.IDENTICAL:
        logger.info(run["reason"], extra=result)
    elif outcome == starter.IGNORED:
        logger.info("object ignored", extra=result)
    else:
        logger.info(f"dataset {outcome}", extra=result)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
def lambda_handler(
    event: QuietCheckInput | dict[str, Any], context: LambdaContext
) -> BatchWaiterState | dict[str, Any]:
    settings = starter.Settings.from_env(os.environ)
    if "quietCheck" in event:
        check = parse(QuietCheckInput, event, what="start_run quiet check")["quietCheck"]
        result = starter.check_quiet_period(
            dict(check), clients=_clients(), settings=settings, now_ms=int(time.time() * 1000)
        )
        _log(result)
        return parse(BatchWaiterState, result, what="start_run quiet check result")
    try:
        objects = trigger.parse_events(event)
    except trigger.EventShapeError as error:
        logger.warning("ignored event", extra={"reason": str(error)})
        return {"results": [{"outcome": starter.IGNORED, "reason": str(error)}]}
    results = []
    for obj in objects:
        try:
            result = starter.handle_object_event(
                obj,
                clients=_clients(),
                settings=settings,
                now_ms=int(time.time() * 1000),
                token=uuid.uuid4().hex,
            )
        except ClientError:
            # Raised again: Lambda retries the event twice, then it goes to the dead-letter queue (redrive:
            # docs/pipeline.md).
            logger.exception("could not handle the upload; the event will be retried", extra={"key": obj.key})
            raise
        _log(result)
        results.append(result)
    return {"results": results}
