"""Tell people (SNS) and machines (EventBridge) how a run or a deployment ended; returns the failure's
error and cause so the state machine's Fail state carries them."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client, publish_notification
from mlops_common.pipeline import report
from mlops_common.step_values import Notification, NotifyInput, parse

logger = Logger(service="pipeline-notify")
metrics = Metrics(service="pipeline")


def _send(subject: str, message: dict[str, Any], detail_type: str) -> None:
    publish_notification(
        os.environ["NOTIFICATION_TOPIC_ARN"],
        subject,
        message,
        event_source=report.EVENT_SOURCE,
        event_detail_type=detail_type,
    )


@logger.inject_lambda_context(correlation_id_path="state.runId")
@metrics.log_metrics
def lambda_handler(event: NotifyInput, context: LambdaContext) -> Notification:
    event = parse(NotifyInput, event, what="notify input")
    outcome = event["outcome"]
    state: dict[str, Any] = dict(event["state"])
    message: dict[str, Any] = {"outcome": outcome, **report.summary(state)}
    for step, seconds in report.step_durations(state).items():
        metrics.add_metric(name=f"{step}Seconds", unit=MetricUnit.Seconds, value=seconds)
    if outcome in ("failed", "deploy_failed"):
        # A failed job's log holds the recipe's own message when the job's record does not.
        message.update(report.failure(state, report.cloudwatch_log_tail(client("logs"))))
        execution_arn = event.get("executionArn")
        region = execution_arn.split(":")[3] if execution_arn else os.environ.get("AWS_REGION", "")
        message.update(
            report.where_to_look(
                state,
                message["step"],
                stack_name=os.environ.get("STACK_NAME", ""),
                region=region,
                execution_arn=execution_arn,
            )
        )
        if outcome == "failed":
            metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
            _send(f"Run failed at {message['step']}: {message['dataset']}", message, report.FAILED)
        elif report.reported_by_deploy(state):  # a pipeline-started deployment is reported by its run
            message["modelPackageArn"] = state.get("modelPackageArn")
            if (state.get("deploy") or {}).get("stage"):
                message["stage"] = state["deploy"]["stage"]
            _send(f"Deployment failed: {state.get('modelPackageArn')}", message, report.DEPLOY_FAILED)
        logger.error("failure notified", extra=message)
        return {"error": message["error"], "cause": f"{message['step']}: {message['cause']}"[:32768]}
    if outcome == "deployed":
        deployment = state.get("deploy") or {}
        message.update(
            {"modelPackageArn": state.get("modelPackageArn"), "endpointName": deployment.get("endpointName")}
        )
        if deployment.get("stage"):
            message["stage"] = deployment["stage"]
        _send(f"Deployed: {deployment.get('endpointName')}", message, report.DEPLOYED)
    else:
        metrics.add_metric(name="RunsSucceeded", unit=MetricUnit.Count, value=1)
        if outcome == "superseded":
            deployed = (state.get("deployment") or {}).get("output") or {}
            message.update(
                {"reason": deployed.get("reason"), "servingPackageArn": deployed.get("championPackageArn")}
            )
        if outcome == "pending_approval":
            message["nextStep"] = (
                "approve to deploy: aws sagemaker update-model-package --model-approval-status Approved "
                f"--model-package-arn {message.get('modelPackageArn')}"
            )
        if outcome == "staged":
            message["nextStep"] = (
                "the model serves on staging and passed its soak; promote it to prod with: "
                f"{report.promote_command(state, os.environ.get('STACK_NAME', '<stack>'))}"
            )
        _send(f"Run succeeded ({outcome}): {message['dataset']}", message, report.SUCCEEDED)
    logger.info("outcome notified", extra=message)
    return parse(Notification, message, what="notify result")
