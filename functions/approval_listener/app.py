"""'SageMaker Model Package State Change' to Approved -> deploy, for manually approved packages only."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import approvals

logger = Logger(service="deploy-approval-listener")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    result = approvals.handle_approval(
        dict(event.detail),
        sagemaker=client("sagemaker"),
        sfn=client("stepfunctions"),
        deploy_state_machine_arn=os.environ["DEPLOY_STATE_MACHINE_ARN"],
        stack_name=os.environ["STACK_NAME"],
    )
    logger.info("approval handled", extra={**result, "detailType": event.detail_type})
    return result
