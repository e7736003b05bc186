"""The transform seam: transform jobs run the model's container on every record, join, assemble, and fail as
AWS does."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from offline.seams import transform_runner
from offline.seams.state import OfflineState
from tests.unit.offline.conftest import ROLE, aws
from tests.unit.offline.test_job_runner import IMAGE, _tar

# Doubles the number on each line; "fail" anywhere in the body is refused with 400, as a strict model would.
INFERENCE = """
import json, pathlib

def model_fn(model_dir):
    return json.loads(pathlib.Path(model_dir, "model.json").read_text())

def input_fn(body, content_type):
    if "fail" in body:
        raise ValueError("cannot read 'fail'")
    return [float(x) for x in body.strip().splitlines()]

def predict_fn(data, model):
    return [x * model["factor"] for x in data]

def output_fn(prediction, accept):
    return "".join(f"{x:g}\\n" for x in prediction), "text/csv"
"""


def _model(name: str = "doubler") -> str:
    s3 = aws("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(
        Bucket="models",
        Key=f"{name}/model.tar.gz",
        Body=_tar({"model.json": json.dumps({"factor": 2}), "code/inference.py": INFERENCE}),
    )
    aws("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://models/{name}/model.tar.gz"},
    )
    return name


def _job(name: str, prefix: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "doubler",
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://data/{prefix}"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://data/out/{name}/",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        "DataProcessing": {"JoinSource": "Input"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    spec.update(overrides)
    return spec


def _wait(name: str) -> dict[str, Any]:
    transform_runner.wait_for_transform(name, 60)
    return aws("sagemaker").describe_transform_job(TransformJobName=name)


@pytest.fixture
def data(offline_state: OfflineState) -> Any:
    s3 = aws("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="in/a.csv", Body=b"1\n\n2\n3\n")
    s3.put_object(Bucket="data", Key="in/sub/b.csv", Body=b"10\n")
    _model()
    return s3


def _out(s3: Any, key: str) -> str:
    return s3.get_object(Bucket="data", Key=key)["Body"].read().decode()


def test_every_record_is_predicted_and_joined_to_its_input(data: Any) -> None:
    aws("sagemaker").create_transform_job(**_job("t1", "in/"))
    assert (
        aws("sagemaker").describe_transform_job(TransformJobName="t1")["TransformJobStatus"] == "InProgress"
    )
    described = _wait("t1")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert described["TransformEndTime"] >= described["TransformStartTime"]
    # One .out per input object, keys relative to the input prefix; the blank line is no record.
    assert _out(data, "out/t1/a.csv.out") == "1,2\n2,4\n3,6\n"
    assert _out(data, "out/t1/sub/b.csv.out") == "10,20\n"


def test_single_records_without_join_are_the_model_answers(data: Any) -> None:
    aws("sagemaker").create_transform_job(
        **_job("t2", "in/a.csv", BatchStrategy="SingleRecord", DataProcessing={"JoinSource": "None"})
    )
    assert _wait("t2")["TransformJobStatus"] == "Completed"
    assert _out(data, "out/t2/a.csv.out") == "2\n4\n6\n"


def test_a_record_the_model_refuses_fails_the_whole_job_as_on_aws(data: Any) -> None:
    data.put_object(Bucket="data", Key="bad/c.csv", Body=b"1\nfail\n3\n")
    aws("sagemaker").create_transform_job(**_job("t3", "bad/"))
    described = _wait("t3")
    assert described["TransformJobStatus"] == "Failed"
    # The scikit-learn container answers an exception in a handler with a 500 and an HTML page, as on AWS.
    assert described["FailureReason"].startswith(
        "ClientError: the model container answered 500 to a mini-batch: <!doctype html>"
    )
    with pytest.raises(ClientError):
        data.get_object(Bucket="data", Key="out/t3/c.csv.out")


def test_an_answer_without_one_line_per_record_cannot_be_joined(data: Any) -> None:
    with pytest.raises(transform_runner.TransformError, match=r"answered 1 line\(s\) for 2 record\(s\)"):
        transform_runner.answer_lines(b"4\n", 2, "a.csv")


def test_mini_batches_respect_the_payload_limit() -> None:
    records = [b"x" * 10] * 5
    assert [len(b) for b in transform_runner.mini_batches(records, "MultiRecord", 25)] == [2, 2, 1]
    assert [len(b) for b in transform_runner.mini_batches(records, "SingleRecord", 25)] == [1] * 5
    with pytest.raises(transform_runner.TransformError, match="exceeds MaxPayloadInMB"):
        transform_runner.mini_batches([b"x" * 30], "MultiRecord", 25)


def test_duplicate_name_missing_model_and_unknown_image(data: Any) -> None:
    sm = aws("sagemaker")
    sm.create_transform_job(**_job("t4", "in/sub/"))
    with pytest.raises(ClientError, match="already exists"):
        sm.create_transform_job(**_job("t4", "in/sub/"))
    assert _wait("t4")["TransformJobStatus"] == "Completed"
    sm.create_transform_job(**_job("t5", "in/sub/", ModelName="missing"))
    assert _wait("t5")["FailureReason"] == "ClientError: Could not find model 'missing'"
    sm.create_model(ModelName="other", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "x/y:1"})
    sm.create_transform_job(**_job("t6", "in/sub/", ModelName="other"))
    assert _wait("t6")["FailureReason"] == "no offline runner for image x/y:1"


def test_forced_outcome(data: Any, offline_state: OfflineState) -> None:
    offline_state.faults.force_job_outcome("transform", "Failed", "CapacityError: no ml.m5.large")
    aws("sagemaker").create_transform_job(**_job("t7", "in/sub/"))
    described = _wait("t7")
    assert (described["TransformJobStatus"], described["FailureReason"]) == (
        "Failed",
        "CapacityError: no ml.m5.large",
    )


def test_gap_moto_completes_transform_jobs_at_create_and_runs_nothing(plain_moto: None) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="in/a.csv", Body=b"1\n")
    aws("sagemaker").create_model(
        ModelName="doubler", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE}
    )
    aws("sagemaker").create_transform_job(**_job("gap", "in/"))
    time.sleep(0.1)
    assert (
        aws("sagemaker").describe_transform_job(TransformJobName="gap")["TransformJobStatus"] == "Completed"
    )
    assert "Contents" not in s3.list_objects_v2(Bucket="data", Prefix="out/")
