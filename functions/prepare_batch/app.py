"""Prepare a batch: snapshot its files, find the dataset's model, build the transform requests (or refuse)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.batch import prepare
from mlops_common.step_values import BatchStart, PreparedBatch, parse

logger = Logger(service="batch-prepare")


def settings() -> prepare.Settings:
    return prepare.Settings(
        stack_name=os.environ["STACK_NAME"],
        input_bucket=os.environ["INPUT_BUCKET"],
        output_bucket=os.environ["OUTPUT_BUCKET"],
        models_bucket=os.environ["MODELS_BUCKET"],
        instance_type=os.environ["BATCH_INSTANCE_TYPE"],
    )


@logger.inject_lambda_context(correlation_id_path="batchId")
def lambda_handler(event: BatchStart, context: LambdaContext) -> PreparedBatch:
    event = parse(BatchStart, event, what="prepare_batch input")
    prepared = prepare.prepare(dict(event), settings(), s3=client("s3"), sagemaker=client("sagemaker"))
    logger.info(
        f"batch {prepared['status']}",
        extra={k: prepared.get(k) for k in ("dataset", "batchId", "model", "reason", "skipped")},
    )
    return parse(PreparedBatch, prepared, what="prepare_batch result")
