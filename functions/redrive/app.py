"""Replay the trigger dead-letter queue into StartRun and ApprovalListener (docs/pipeline.md, "Nothing lost").

aws lambda invoke --function-name <RedriveFunctionName> out.json      # optional payload {"max_messages": 50}
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import redrive
from mlops_common.step_values import RedriveRequest, parse

logger = Logger(service="pipeline-redrive")


@logger.inject_lambda_context
def lambda_handler(event: RedriveRequest | None, context: LambdaContext) -> dict[str, Any]:
    request = parse(RedriveRequest, event or {}, what="redrive input")
    max_messages = request.get("max_messages") or 1000
    result = redrive.redrive(
        client("sqs"),
        client("lambda"),
        os.environ["DEAD_LETTER_QUEUE_URL"],
        {
            redrive.S3_SOURCE: os.environ["START_RUN_FUNCTION"],
            redrive.SAGEMAKER_SOURCE: os.environ["APPROVAL_LISTENER_FUNCTION"],
        },
        max_messages,
    ).as_dict()
    logger.info("dead letters replayed", extra=result)
    return result
