"""notify against moto: the SNS message and the EventBridge event carry step, cause and facts."""

from __future__ import annotations

import json

import pytest

from mlops_common.pipeline import report
from tests.conftest import load_function_module

from .conftest import Stack, load_event

notify = load_function_module("notify")


def received(stack: Stack, topic_queue: str, events_queue: str) -> tuple[dict, dict]:
    [sns_envelope] = stack.messages(topic_queue)
    [event] = stack.messages(events_queue)
    return json.loads(sns_envelope["Message"]), event


def test_a_stopped_training_job_is_notified_as_stopped_max_runtime(stack, lambda_context):
    topic_queue = stack.subscribe_queue()
    events_queue = stack.capture_events(report.EVENT_SOURCE)

    result = notify.lambda_handler(load_event("notify_failed.json"), lambda_context)

    assert result["error"] == "TrainingJobStopped"
    assert result["cause"] == (
        "TrainModel: Training job sagemaker-mlops-iris-1a2b3c4d-train-9f8e Stopped: MaxRuntimeExceeded"
    )
    message, event = received(stack, topic_queue, events_queue)
    assert message["step"] == "TrainModel" and "Stopped: MaxRuntimeExceeded" in message["cause"]
    assert message["dataset"] == "iris" and message["runId"] == "iris-0f1e2d3c4b5a6978"
    assert event["detail-type"] == "Pipeline Run Failed" and event["detail"]["step"] == "TrainModel"


def test_a_success_carries_metrics_package_and_endpoint(stack, prepared_run, lambda_context):
    topic_queue = stack.subscribe_queue()
    events_queue = stack.capture_events(report.EVENT_SOURCE)
    state = {
        "run": prepared_run,
        "gate": {"metrics": {"accuracy": 0.96}, "reason": "accuracy 0.96, no threshold set"},
        "registration": {
            "modelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1",
            "approvalStatus": "Approved",
        },
        "train": {"TrainingJobStatus": "Completed", "TrainingTimeInSeconds": 42},
        "process": {
            "ProcessingJobStatus": "Completed",
            "ProcessingStartTime": "2026-11-22T16:00:00Z",
            "ProcessingEndTime": "2026-11-22T16:01:30Z",
        },
        "evaluate": {"ProcessingJobStatus": "Completed"},
    }

    notify.lambda_handler({"outcome": "succeeded", "state": state}, lambda_context)

    message, event = received(stack, topic_queue, events_queue)
    assert message["metrics"] == {"accuracy": 0.96}
    assert (
        message["modelPackageArn"].endswith("/g/1")
        and message["endpointName"] == prepared_run["names"]["endpoint"]
    )
    assert event["detail-type"] == "Pipeline Run Succeeded"
    # The evaluation report (self-contained HTML) is named in the notification and the event.
    assert message["report"] == event["detail"]["report"] == prepared_run["paths"]["report"]
    assert message["report"].endswith("/evaluation/report/report.html")
    assert report.summary({**state, "evaluate": {"ProcessingJobStatus": "Failed"}})["report"] is None
    del state["evaluate"]
    assert report.step_durations(state) == {"ProcessData": 90.0, "TrainModel": 42.0}
    # .sync outputs carry epoch milliseconds
    state["evaluate"] = {"ProcessingStartTime": 1795364671000, "ProcessingEndTime": 1795364676500}
    assert report.step_durations(state)["EvaluateModel"] == 5.5


def test_pending_approval_says_how_to_approve(stack, prepared_run, lambda_context):
    topic_queue = stack.subscribe_queue()
    stack.capture_events(report.EVENT_SOURCE)
    state = {
        "run": prepared_run,
        "registration": {"modelPackageArn": "arn:pkg/1", "approvalStatus": "PendingManualApproval"},
    }
    notify.lambda_handler({"outcome": "pending_approval", "state": state}, lambda_context)
    [envelope] = stack.messages(topic_queue)
    assert (
        "update-model-package --model-approval-status Approved" in json.loads(envelope["Message"])["nextStep"]
    )


def test_a_pipeline_started_deployment_failure_is_left_to_the_run(stack, lambda_context):
    topic_queue = stack.subscribe_queue()
    state = {
        "source": "pipeline",
        "failedStep": "SmokeTest",
        "error": {
            "Error": "SmokeTestError",
            "Cause": json.dumps({"errorType": "SmokeTestError", "errorMessage": "sent 2 row(s), got 1"}),
        },
    }
    result = notify.lambda_handler({"outcome": "deploy_failed", "state": state}, lambda_context)
    assert result == {"error": "SmokeTestError", "cause": "SmokeTest: sent 2 row(s), got 1"}
    assert stack.messages(topic_queue) == []


@pytest.mark.parametrize(
    ("state", "error", "cause"),
    [
        (
            {
                "failedStep": "PrepareRun",
                "error": {
                    "Error": "InvalidConfigError",
                    "Cause": json.dumps(
                        {
                            "errorType": "InvalidConfigError",
                            "errorMessage": "pipeline.json field 'rollout': 'fast' is not one of ...",
                        }
                    ),
                },
            },
            "InvalidConfigError",
            "pipeline.json field 'rollout': 'fast' is not one of ...",
        ),
        (
            {
                "failedStep": "ProcessData",
                "error": {
                    "Error": "States.TaskFailed",
                    "Cause": json.dumps(
                        {
                            "ProcessingJobName": "p",
                            "ProcessingJobStatus": "Failed",
                            "FailureReason": "AlgorithmError: DatasetError: target column 'label' not found",
                        }
                    ),
                },
            },
            "ProcessingJobFailed",
            "Processing job p Failed: AlgorithmError: DatasetError: target column 'label' not found",
        ),
        (
            {
                "failedStep": "TrainModel",
                "train": {
                    "TrainingJobName": "t",
                    "TrainingJobStatus": "Stopped",
                    "SecondaryStatus": "MaxRuntimeExceeded",
                },
            },
            "TrainingJobStopped",
            "Training job t Stopped: MaxRuntimeExceeded",
        ),
        (
            {"failedStep": "QualityGate", "gate": {"reason": "accuracy 0.5 does not meet the threshold"}},
            "QualityGateRejected",
            "accuracy 0.5 does not meet the threshold",
        ),
        (
            {
                "failedStep": "DeployModel",
                "error": {
                    "Error": "States.TaskFailed",
                    "Cause": json.dumps(
                        {
                            "executionArn": "arn:x",
                            "status": "FAILED",
                            "error": "EndpointRolledBack",
                            "cause": "EndpointRolledBack: the update of e was rolled back",
                        }
                    ),
                },
            },
            "EndpointRolledBack",
            "EndpointRolledBack: the update of e was rolled back",
        ),
        (
            {
                "failedStep": "EndpointRolledBack",
                "endpoint": {"EndpointName": "e", "EndpointStatus": "InService", "EndpointConfigName": "old"},
                "endpointConfig": {"name": "new"},
            },
            "EndpointRolledBack",
            "the update of e was rolled back: it still serves old, not new "
            "(a rollback alarm fired or the new fleet failed)",
        ),
    ],
)
def test_failure_causes(state: dict, error: str, cause: str):
    found = report.failure(state)
    assert (found["error"], found["cause"]) == (error, cause)


SMOKE_FAILED = {
    "failedStep": "SmokeTest",
    "error": {"Error": "SmokeTestError", "Cause": json.dumps({"errorMessage": "no finite score"})},
    "deploy": {"endpointName": "e", "previousConfig": "old"},
}


@pytest.mark.parametrize(
    ("state", "cause"),
    [
        (
            {**SMOKE_FAILED, "restored": {"EndpointArn": "arn"}},
            "no finite score; e is going back to its previous endpoint config old",
        ),
        (
            {
                **SMOKE_FAILED,
                "restoreError": {"Error": "SageMaker.AmazonSageMakerException", "Cause": "busy"},
            },
            "no finite score; switching e back to old failed (busy): it still serves the new model",
        ),
        (
            {**SMOKE_FAILED, "deploy": {"endpointName": "e", "previousConfig": None}},
            "no finite score; e is new and serves this model until the next deployment or its deletion",
        ),
    ],
)
def test_a_failed_smoke_test_says_what_the_endpoint_serves_now(state: dict, cause: str):
    assert report.failure(state) == {"step": "SmokeTest", "error": "SmokeTestError", "cause": cause}


def test_an_event_eventbridge_refuses_is_an_error_not_a_silent_loss():
    import boto3
    from botocore.stub import Stubber

    from mlops_common.aws import NotificationError, publish_notification

    sns = boto3.client("sns", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    with Stubber(sns) as sns_stub, Stubber(events) as events_stub:
        sns_stub.add_response("publish", {"MessageId": "1"})
        events_stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
            },
        )
        with pytest.raises(NotificationError, match=r"'Pipeline Run Failed'.*InternalFailure: try again"):
            publish_notification(
                "arn:aws:sns:us-east-1:123456789012:topic",
                "Run failed",
                {"dataset": "iris"},
                event_source=report.EVENT_SOURCE,
                event_detail_type=report.FAILED,
                sns=sns,
                events=events,
            )
        events_stub.assert_no_pending_responses()


def test_a_failure_notification_names_the_logs_command_and_the_console_pages(stack, lambda_context):
    topic_queue = stack.subscribe_queue()
    stack.capture_events(report.EVENT_SOURCE)
    event = load_event("notify_failed.json")
    execution = (
        "arn:aws:states:us-east-1:123456789012:execution:sagemaker-mlops-pipeline:iris-0f1e2d3c4b5a6978"
    )
    event["executionArn"] = execution

    notify.lambda_handler(event, lambda_context)

    [envelope] = stack.messages(topic_queue)
    message = json.loads(envelope["Message"])
    assert message["logsCommand"] == (
        "mlops --stack sagemaker-mlops --region us-east-1 logs iris-0f1e2d3c4b5a6978 --step TrainModel"
    )
    links = message["consoleLinks"]
    assert links["execution"].endswith(f"#/v2/executions/details/{execution}")
    job = "sagemaker-mlops-iris-1a2b3c4d-train-9f8e"
    assert (
        links["jobPage"]
        == f"https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/{job}"
    )
    assert links["jobLogStreams"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/"
        f"$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{job}"
    )


def test_a_lambda_step_failure_links_the_execution_only():
    state = {"runId": "r-1", "failedStep": "PrepareRun", "error": {"Error": "X", "Cause": "{}"}}
    hints = report.where_to_look(
        state,
        "PrepareRun",
        stack_name="s",
        region="eu-west-1",
        execution_arn="arn:aws:states:eu-west-1:1:execution:m:r-1",
    )
    assert hints["logsCommand"] == "mlops --stack s --region eu-west-1 logs r-1 --step PrepareRun"
    assert list(hints["consoleLinks"]) == ["execution"]


TOOLKIT_FAILURE = (
    'AlgorithmError: framework error: \nTraceback (most recent call last):\n  File "_trainer.py", line 84\n'
    'sagemaker_training.errors.ExecuteUserScriptError: ExecuteUserScriptError:\nExitCode 2\nErrorMessage ""\n'
    'Command "/usr/bin/python3 train.py --algorithm linear"'
)
RECIPE_LINE = "DatasetError: train.csv: column 'petal_width' has no numeric value; fix the data"
TRAINING_LOG = [
    "Invoking user training script.",
    "Traceback (most recent call last):",
    '  File "train.py", line 12, in main',
    "recipe_common.DatasetError: train.csv: column 'petal_width' has no numeric value; fix the data",
    RECIPE_LINE,
    "2026-12-01 05:00:00,000 sagemaker-containers ERROR    Reporting training FAILURE",
    "framework error: ",
    "sagemaker_training.errors.ExecuteUserScriptError: ExecuteUserScriptError:",
    "ExitCode 2",
    'ErrorMessage ""',
]


def _failed_training(name: str = "ds-run-train-1") -> dict:
    return {
        "failedStep": "TrainModel",
        "error": {
            "Error": "States.TaskFailed",
            "Cause": json.dumps(
                {"TrainingJobName": name, "TrainingJobStatus": "Failed", "FailureReason": TOOLKIT_FAILURE}
            ),
        },
    }


def test_a_training_failure_names_the_recipes_line_from_the_jobs_log_not_the_toolkits_wrapper():
    found = report.failure(_failed_training(), lambda kind, name: TRAINING_LOG if kind == "Training" else [])
    assert found["error"] == "TrainingJobFailed"
    assert found["cause"].startswith(f"Training job ds-run-train-1 Failed: {RECIPE_LINE} (FailureReason: ")
    # without a readable log the kept reason is all there is
    assert report.failure(_failed_training())["cause"].endswith(
        'Command "/usr/bin/python3 train.py --algorithm linear"'
    )

    def unreadable(kind: str, name: str) -> list[str]:
        raise RuntimeError("AccessDenied")

    assert "ExecuteUserScriptError" in report.failure(_failed_training(), unreadable)["cause"]


def test_a_processing_failure_names_its_exit_message_not_the_generic_reason():
    describe = {
        "ProcessingJobName": "ds-run-process-1",
        "ProcessingJobStatus": "Failed",
        "FailureReason": "AlgorithmError: See job logs for more information",
        "ExitMessage": "DatasetError: iris.csv: target column 'label' not found",
    }

    def no_log_needed(kind: str, name: str) -> list[str]:
        raise AssertionError("the exit message is enough")

    state = {"failedStep": "ProcessData", "process": describe}
    assert report.failure(state, no_log_needed)["cause"] == (
        "Processing job ds-run-process-1 Failed: DatasetError: iris.csv: target column 'label' not found"
    )
    without_message = {k: v for k, v in describe.items() if k != "ExitMessage"}
    found = report.failure(
        {"failedStep": "ProcessData", "process": without_message}, lambda k, n: ["ValueError: bad"]
    )
    assert found["cause"].startswith(
        "Processing job ds-run-process-1 Failed: ValueError: bad (FailureReason: "
    )


def test_the_notification_reads_the_failed_jobs_cloudwatch_log(stack, lambda_context):
    logs = stack_client("logs")
    group = report.JOB_LOG_GROUPS["Training"]
    logs.create_log_group(logGroupName=group)
    for stream, lines in (
        ("ds-run-train-10/algo-1-1796000000", ["DatasetError: not this job"]),
        ("ds-run-train-1/algo-1-1796000000", TRAINING_LOG),
    ):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": 1796000000000 + i, "message": line} for i, line in enumerate(lines)],
        )
    topic_queue = stack.subscribe_queue()
    events_queue = stack.capture_events(report.EVENT_SOURCE)

    result = notify.lambda_handler({"outcome": "failed", "state": _failed_training()}, lambda_context)

    assert result["cause"].startswith(f"TrainModel: Training job ds-run-train-1 Failed: {RECIPE_LINE}")
    message, _ = received(stack, topic_queue, events_queue)
    assert RECIPE_LINE in message["cause"]


def stack_client(service: str):
    import boto3

    from .conftest import REGION

    return boto3.client(service, region_name=REGION)
