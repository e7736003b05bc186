"""Prepare a run: configuration, data format, names, recipe upload, experiment trial, job requests."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import prepare
from mlops_common.step_values import RunStart, RunState, parse

logger = Logger(service="pipeline-prepare-run")


@logger.inject_lambda_context(correlation_id_path="runId")
def lambda_handler(event: RunStart, context: LambdaContext) -> RunState:
    # Invalid configuration or data raises a named error (InvalidConfigError, DataFormatError, ...) whose
    # message says what to fix; the state machine's Catch notifies it.
    run = prepare.prepare_run(
        dict(parse(RunStart, event, what="prepare_run input")),
        prepare.Settings.from_env(dict(os.environ)),
        client("s3"),
        client("sagemaker"),
    )
    logger.info(
        "run prepared",
        extra={
            "dataset": run["dataset"],
            "format": run["data"]["format"],
            "names": run["names"],
            "code": run["code"],
        },
    )
    return parse(RunState, run, what="prepare_run result")
