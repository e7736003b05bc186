"""Tell people (SNS) and machines (EventBridge) how a batch ended: its predictions and the rows the model
could not read (file and line), a refusal with its reason, or the failing step and cause."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client, publish_notification
from mlops_common.batch import results
from mlops_common.pipeline import report
from mlops_common.step_values import Notification, ReportBatchInput, parse

logger = Logger(service="batch-report")
metrics = Metrics(service="batch")


def _send(subject: str, message: dict[str, Any], detail_type: str) -> None:
    publish_notification(
        os.environ["NOTIFICATION_TOPIC_ARN"],
        subject,
        message,
        event_source=report.EVENT_SOURCE,
        event_detail_type=detail_type,
    )


@logger.inject_lambda_context(correlation_id_path="state.batchId")
@metrics.log_metrics
def lambda_handler(event: ReportBatchInput, context: LambdaContext) -> Notification:
    event = parse(ReportBatchInput, event, what="report_batch input")
    outcome, state = event["outcome"], event["state"]
    if outcome == "predicted":
        result = results.collect(client("s3"), state["prepared"])
        subject, message = results.succeeded_message(state["prepared"], result)
        metrics.add_metric(name="BatchRowsPredicted", unit=MetricUnit.Count, value=result.predicted)
        metrics.add_metric(name="BatchRowsUnreadable", unit=MetricUnit.Count, value=len(result.bad))
        _send(subject, message, results.SUCCEEDED)
    elif outcome == "refused":
        subject, message = results.refused_message(state["prepared"])
        metrics.add_metric(name="BatchesRefused", unit=MetricUnit.Count, value=1)
        _send(subject, message, results.REFUSED)
    else:
        subject, message = results.failed_message(state)
        metrics.add_metric(name="BatchesFailed", unit=MetricUnit.Count, value=1)
        _send(subject, message, results.FAILED)
    logger.info(subject, extra=message)
    # The Fail states read error and cause from here (at most 32,768 characters).
    detail = message.get("cause") or message.get("reason") or ""
    notification = {**message, "error": message.get("error", "BatchRefused"), "cause": str(detail)[:32768]}
    return parse(Notification, notification, what="report_batch result")
