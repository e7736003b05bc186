"""The Step Functions and job runner seams: SageMaker jobs really run (create_* from a client or a .sync task)
and report like AWS."""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from offline.seams.state import OfflineState
from tests.unit.offline.conftest import ROLE, aws

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

PROCESS = """
import pathlib, sys
rows = pathlib.Path(sys.argv[1], "data.csv").read_text().splitlines()
if len(rows) < 2:
    print("DatasetError: data.csv needs a header and one row", file=sys.stderr)
    if len(rows) == 1:  # an empty file says nothing but on stderr
        message = pathlib.Path(sys.argv[1]).parents[2] / "output" / "message"  # /opt/ml/output/message
        message.parent.mkdir(parents=True, exist_ok=True)
        message.write_text("data.csv has only a header: add rows " + "x" * 2000)
    sys.exit(2)
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
(out / "count.txt").write_text(str(len(rows) - 1))
"""

TRAIN = """
import argparse, json, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--n-estimators", type=int)
args = parser.parse_args()
rows = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"], "train.csv").read_text().splitlines()
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "model.json").write_text(json.dumps({"rows": len(rows), "n": args.n_estimators, "hosts":
os.environ["SM_HOSTS"]}))
print(f"validation:accuracy={0.5 + args.n_estimators / 1000}")
if args.n_estimators > 900:
    root = model.parent
    (root / "output").mkdir(exist_ok=True)
    (root / "output" / "failure").write_text("too many trees: n-estimators must be at most 900")
    raise SystemExit(1)
"""


def _wait(describe: Any, key: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (result := describe())[key] in ("InProgress", "Stopping"):
        assert time.monotonic() < deadline, result
        time.sleep(0.05)
    return result


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _processing_job(name: str, image: str = IMAGE, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": image,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/process.py"],
            "ContainerArguments": ["/opt/ml/processing/input/data", "/opt/ml/processing/output/result"],
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": _s3in("s3://bkt/code/process.py", "/opt/ml/processing/input/code"),
            },
            {"InputName": "data", "S3Input": _s3in("s3://bkt/data", "/opt/ml/processing/input/data")},
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": "s3://bkt/out/" + name,
                        "LocalPath": "/opt/ml/processing/output/result",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    spec.update(extra)
    return spec


def _s3in(uri: str, local: str) -> dict[str, str]:
    return {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File"}


def _training_job(name: str, n: str = '"10"', runtime: int = 60) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "validation:accuracy", "Regex": r"validation:accuracy=([0-9.]+)"}],
        },
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://bkt/code/sourcedir.tar.gz"',
            "n-estimators": n,
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bkt/train/"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bkt/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
    }


@pytest.fixture
def bucket(offline_state: OfflineState) -> Any:
    s3 = aws("s3")
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="code/process.py", Body=PROCESS.encode())
    s3.put_object(Bucket="bkt", Key="data/data.csv", Body=b"a,b\n1,2\n3,4\n")
    s3.put_object(Bucket="bkt", Key="code/sourcedir.tar.gz", Body=_tar({"train.py": TRAIN}))
    s3.put_object(Bucket="bkt", Key="train/train.csv", Body=b"1,2\n3,4\n5,6\n")
    return s3


def test_processing_job_runs_and_uploads_outputs(bucket: Any) -> None:
    sm = aws("sagemaker")
    sm.create_processing_job(**_processing_job("p1"))

    done = _wait(lambda: sm.describe_processing_job(ProcessingJobName="p1"), "ProcessingJobStatus")

    assert done["ProcessingJobStatus"] == "Completed", done.get("FailureReason")
    assert bucket.get_object(Bucket="bkt", Key="out/p1/count.txt")["Body"].read() == b"2"


def test_processing_failure_keeps_the_exit_message_file_not_stderr(bucket: Any) -> None:
    """AWS: ExitMessage = the first KB of /opt/ml/output/message; a generic FailureReason; stderr unread."""
    bucket.put_object(Bucket="bkt", Key="data/data.csv", Body=b"a,b\n")
    sm = aws("sagemaker")
    sm.create_processing_job(**_processing_job("p2"))

    done = _wait(lambda: sm.describe_processing_job(ProcessingJobName="p2"), "ProcessingJobStatus")

    assert done["ProcessingJobStatus"] == "Failed"
    assert done["FailureReason"] == "AlgorithmError: See job logs for more information"
    assert done["ExitMessage"].startswith("data.csv has only a header: add rows xxx")
    assert len(done["ExitMessage"]) == 1024


def test_processing_failure_without_a_message_file_has_no_exit_message(bucket: Any) -> None:
    bucket.put_object(Bucket="bkt", Key="data/data.csv", Body=b"")
    sm = aws("sagemaker")
    sm.create_processing_job(**_processing_job("p2b"))

    done = _wait(lambda: sm.describe_processing_job(ProcessingJobName="p2b"), "ProcessingJobStatus")

    assert done["ProcessingJobStatus"] == "Failed"
    assert "ExitMessage" not in done, "the stderr line must not surface where AWS would not show it"
    assert "DatasetError" not in done["FailureReason"]


def test_unknown_image_fails_with_clear_reason(bucket: Any) -> None:
    sm = aws("sagemaker")
    sm.create_processing_job(**_processing_job("p3", image="123.dkr.ecr.us-east-1.amazonaws.com/custom:1"))

    done = _wait(lambda: sm.describe_processing_job(ProcessingJobName="p3"), "ProcessingJobStatus")

    assert done["FailureReason"] == "no offline runner for image 123.dkr.ecr.us-east-1.amazonaws.com/custom:1"


def test_training_job_script_mode_artifact_and_metrics(bucket: Any, offline_state: OfflineState) -> None:
    sm = aws("sagemaker")
    sm.create_training_job(**_training_job("t1"))

    done = _wait(lambda: sm.describe_training_job(TrainingJobName="t1"), "TrainingJobStatus")

    assert done["TrainingJobStatus"] == "Completed", done.get("FailureReason")
    assert done["ModelArtifacts"]["S3ModelArtifacts"] == "s3://bkt/models/t1/output/model.tar.gz"
    assert done["FinalMetricDataList"][0]["MetricName"] == "validation:accuracy"
    assert done["FinalMetricDataList"][0]["Value"] == pytest.approx(0.51)
    data = bucket.get_object(Bucket="bkt", Key="models/t1/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        model = json.loads(archive.extractfile("model.json").read())  # type: ignore[union-attr]
    assert model == {"rows": 3, "n": 10, "hosts": '["algo-1"]'}
    assert (offline_state.work_dir / "jobs" / "t1" / "logs" / "stdout.log").is_file()


def test_training_failure_file_is_rewritten_like_the_containers_train_command(bucket: Any) -> None:
    """The script's own output/failure does not survive: the toolkit writes its wrapper (ErrorMessage "")."""
    sm = aws("sagemaker")
    sm.create_training_job(**_training_job("t2", n="950"))

    done = _wait(lambda: sm.describe_training_job(TrainingJobName="t2"), "TrainingJobStatus")

    assert done["TrainingJobStatus"] == "Failed"
    reason = done["FailureReason"]
    assert reason.startswith("AlgorithmError: framework error: \nTraceback (most recent call last):")
    assert (
        'ExecuteUserScriptError:\nExitCode 1\nErrorMessage ""\nCommand "/usr/bin/python3 train.py' in reason
    )
    assert "too many trees" not in reason and len(reason) <= 1024


def test_training_timeout_is_stopped_max_runtime_exceeded(bucket: Any) -> None:
    bucket.put_object(
        Bucket="bkt", Key="code/sourcedir.tar.gz", Body=_tar({"train.py": "import time\ntime.sleep(30)\n"})
    )
    sm = aws("sagemaker")
    sm.create_training_job(**_training_job("t3", runtime=1))

    done = _wait(lambda: sm.describe_training_job(TrainingJobName="t3"), "TrainingJobStatus")

    assert done["TrainingJobStatus"] == "Stopped"
    assert done["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_duplicate_job_name_is_rejected(bucket: Any) -> None:
    sm = aws("sagemaker")
    sm.create_training_job(**_training_job("t4"))
    with pytest.raises(ClientError) as error:
        sm.create_training_job(**_training_job("t4"))
    assert error.value.response["Error"]["Code"] == "ResourceInUse"


def test_sync_task_returns_describe_output_and_fails_with_task_failed(bucket: Any) -> None:
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
                "Parameters": {
                    **_training_job("ignored"),
                    "TrainingJobName.$": "$.name",
                    "HyperParameters.$": "$.hps",
                },
                "End": True,
            }
        },
    }
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(name="train", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    good_hps = _training_job("x")["HyperParameters"]
    bad_hps = {**good_hps, "n-estimators": "950"}
    results = {}
    for name, hps in (("sync-ok", good_hps), ("sync-bad", bad_hps)):
        arn = sfn.start_execution(
            stateMachineArn=machine, name=name, input=json.dumps({"name": name, "hps": hps})
        )["executionArn"]
        deadline = time.monotonic() + 30
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        results[name] = described

    ok = json.loads(results["sync-ok"]["output"])
    assert results["sync-ok"]["status"] == "SUCCEEDED"
    assert ok["TrainingJobStatus"] == "Completed"
    assert ok["ModelArtifacts"]["S3ModelArtifacts"].endswith("/sync-ok/output/model.tar.gz")
    assert results["sync-bad"]["status"] == "FAILED"
    assert results["sync-bad"]["error"] == "States.TaskFailed"
    assert "ExitCode 1" in json.loads(results["sync-bad"]["cause"])["FailureReason"]


def test_forced_outcome_and_api_fault(bucket: Any, offline_state: OfflineState) -> None:
    offline_state.faults.force_job_outcome("training", "Stopped", "MaxRuntimeExceeded: forced", times=1)
    sm = aws("sagemaker")
    sm.create_training_job(**_training_job("t5"))
    done = _wait(lambda: sm.describe_training_job(TrainingJobName="t5"), "TrainingJobStatus")
    assert (done["TrainingJobStatus"], done["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")

    sm.create_training_job(**_training_job("t6"))  # the fault was used once only
    assert (
        _wait(lambda: sm.describe_training_job(TrainingJobName="t6"), "TrainingJobStatus")[
            "TrainingJobStatus"
        ]
        == "Completed"
    )


def test_empty_input_prefix_fails_like_aws(bucket: Any) -> None:
    spec = _processing_job("p4")
    spec["ProcessingInputs"][1]["S3Input"]["S3Uri"] = "s3://bkt/nothing-here/"
    sm = aws("sagemaker")
    sm.create_processing_job(**spec)

    done = _wait(lambda: sm.describe_processing_job(ProcessingJobName="p4"), "ProcessingJobStatus")

    assert done["ProcessingJobStatus"] == "Failed"
    assert 'No S3 objects found under S3 URL "s3://bkt/nothing-here/"' in done["FailureReason"]


def test_sync_task_api_error_is_named_like_the_aws_integration(
    bucket: Any, offline_state: OfflineState
) -> None:
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
                "Parameters": _training_job("throttled"),
                "End": True,
            }
        },
    }
    sfn = aws("stepfunctions")
    machine = sfn.create_state_machine(name="t", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    offline_state.faults.fail_api("sagemaker", "CreateTrainingJob", "ThrottlingException")

    arn = sfn.start_execution(stateMachineArn=machine, name="throttled", input="{}")["executionArn"]
    deadline = time.monotonic() + 20
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert described["error"] == "SageMaker.AmazonSageMakerException"
    assert "Error Code: ThrottlingException" in described["cause"]
    # the job was never created: the fault stood in for the API's answer
    with pytest.raises(ClientError):
        aws("sagemaker").describe_training_job(TrainingJobName="throttled")


def test_stop_training_job_ends_the_run_stopped(bucket: Any) -> None:
    bucket.put_object(
        Bucket="bkt", Key="code/sourcedir.tar.gz", Body=_tar({"train.py": "import time\ntime.sleep(30)\n"})
    )
    sm = aws("sagemaker")
    sm.create_training_job(**_training_job("t7"))
    deadline = time.monotonic() + 10
    while sm.describe_training_job(TrainingJobName="t7")["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    sm.stop_training_job(TrainingJobName="t7")
    done = _wait(lambda: sm.describe_training_job(TrainingJobName="t7"), "TrainingJobStatus")

    assert (done["TrainingJobStatus"], done["SecondaryStatus"]) == ("Stopped", "Stopped")
    with pytest.raises(ClientError) as error:
        sm.stop_training_job(TrainingJobName="t7")
    assert "only InProgress" in error.value.response["Error"]["Message"]
