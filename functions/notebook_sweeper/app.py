"""Scheduled: stop idle SageMaker notebook instances (rules and settings: docs/cost-guard.md)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.cost_guard.notebooks import sweep_notebooks
from mlops_common.cost_guard.settings import notebook_settings
from mlops_common.cost_guard.summary import report_sweep

logger = Logger(service="cost-guard-notebooks")
metrics = Metrics(service="cost-guard-notebooks")


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    settings = notebook_settings()  # raises CostGuardConfigError naming the bad setting
    summary = sweep_notebooks(client("sagemaker"), client("cloudwatch"), settings, datetime.now(UTC))
    return report_sweep(
        summary,
        logger=logger,
        metrics=metrics,
        topic_arn=settings.common.topic_arn,
        stack_name=os.environ.get("STACK_NAME", "mlops"),
    )
