"""The endpoints seam: endpoints start a local inference server, update blue/green with rollback, and really
answer."""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from offline.seams import endpoints
from offline.seams.state import OfflineState
from tests.unit.offline.conftest import ROLE, aws
from tests.unit.offline.test_job_runner import IMAGE, _tar

INFERENCE = """
import json, pathlib

def model_fn(model_dir):
    return json.loads(pathlib.Path(model_dir, "model.json").read_text())

def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"send text/csv, not {content_type}")
    return [float(x) for x in body.strip().splitlines()]

def predict_fn(data, model):
    return [x * model["factor"] for x in data]

def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction}), "application/json"
"""


def _model(name: str, factor: int, code: str = INFERENCE) -> str:
    s3 = aws("s3")
    s3.put_object(
        Bucket="models",
        Key=f"{name}/model.tar.gz",
        Body=_tar({"model.json": json.dumps({"factor": factor}), "code/inference.py": code}),
    )
    sm = aws("sagemaker")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://models/{name}/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    return f"{name}-config"


def _wait(
    name: str, statuses: tuple[str, ...] = ("Creating", "Updating"), timeout: float = 30
) -> dict[str, Any]:
    sm = aws("sagemaker")
    deadline = time.monotonic() + timeout
    while (described := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] in statuses:
        assert time.monotonic() < deadline, described
        time.sleep(0.05)
    return described


def _predict(name: str, body: str = "1\n2\n") -> Any:
    response = aws("sagemaker-runtime").invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
    return json.loads(response["Body"].read())


@pytest.fixture
def models_bucket(offline_state: OfflineState) -> OfflineState:
    aws("s3").create_bucket(Bucket="models")
    return offline_state


def test_create_update_rollback_delete(models_bucket: OfflineState) -> None:
    sm = aws("sagemaker")
    sm.create_endpoint(EndpointName="ep", EndpointConfigName=_model("double", 2))
    described = _wait("ep")
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    assert _predict("ep") == {"predictions": [2.0, 4.0]}

    # an exception in input_fn: the container answers 500 with an HTML page, the message stays in its log
    with pytest.raises(ClientError) as error:
        aws("sagemaker-runtime").invoke_endpoint(
            EndpointName="ep", ContentType="application/json", Body=b"{}"
        )
    assert error.value.response["Error"]["Code"] == "ModelError"
    message = error.value.response["Error"]["Message"]
    assert "Received server error (500)" in message and "Internal Server Error" in message
    assert "send text/csv" not in message

    first_server = endpoints.fleet_for("123456789012", "us-east-1", "ep")
    assert first_server is not None
    sm.update_endpoint(EndpointName="ep", EndpointConfigName=_model("triple", 3))
    described = _wait("ep")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "triple-config")
    assert _predict("ep") == {"predictions": [3.0, 6.0]}
    first_server.process.wait(timeout=5)  # the old fleet was stopped

    sm.update_endpoint(
        EndpointName="ep", EndpointConfigName=_model("broken", 4, code="raise ImportError('no')\n")
    )
    described = _wait("ep")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "triple-config"
    assert "rolled back to triple-config" in described["FailureReason"]
    assert _predict("ep") == {"predictions": [3.0, 6.0]}

    server = endpoints.fleet_for("123456789012", "us-east-1", "ep")
    assert server is not None
    sm.delete_endpoint(EndpointName="ep")
    assert server.process.poll() is not None
    with pytest.raises(ClientError):
        _predict("ep")


CONTRACT = """
import json

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return {"type": type(body).__name__, "content_type": content_type}

def predict_fn(data, model):
    return data

def output_fn(prediction, accept):
    if prediction["content_type"].startswith("application/x-refuse"):
        from sagemaker_containers.beta.framework import worker
        body = json.dumps({"error": "send rows"})
        return worker.Response(response=body, status=400, mimetype="application/json")
    if accept.startswith("text/csv"):
        return f"{prediction['type']},{prediction['content_type']},{accept}\\n", "text/csv"
    return json.dumps(prediction), "application/json"
"""


def test_the_serving_contract_of_the_scikit_learn_container(models_bucket: OfflineState) -> None:
    """Full headers reach the handlers, bytes unless the type is exactly JSON/CSV, text answers carry a
    charset, and a handler's own 4xx Response is the only way a bad request gets its message back."""
    aws("sagemaker").create_endpoint(
        EndpointName="contract", EndpointConfigName=_model("contract", 1, CONTRACT)
    )
    assert _wait("contract")["EndpointStatus"] == "InService"
    runtime = aws("sagemaker-runtime")

    plain = runtime.invoke_endpoint(
        EndpointName="contract", ContentType="text/csv", Accept="text/csv", Body="1"
    )
    assert plain["ContentType"] == "text/csv; charset=utf-8"
    assert plain["Body"].read() == b"str,text/csv,text/csv\n"
    with_charset = runtime.invoke_endpoint(
        EndpointName="contract",
        ContentType="text/csv; charset=utf-8",
        Accept="text/csv, application/json;q=0.5",
        Body="1",
    )
    assert with_charset["Body"].read() == b"bytes,text/csv; charset=utf-8,text/csv, application/json;q=0.5\n"
    default_accept = runtime.invoke_endpoint(EndpointName="contract", ContentType="text/csv", Body="1")
    assert default_accept["ContentType"] == "application/json"
    assert json.loads(default_accept["Body"].read()) == {"type": "str", "content_type": "text/csv"}

    with pytest.raises(ClientError) as error:
        runtime.invoke_endpoint(EndpointName="contract", ContentType="application/x-refuse", Body=b"x")
    assert error.value.response["Error"]["Code"] == "ModelError"
    assert error.value.response["Error"]["Message"] == (
        'Received client error (400) from primary with message "{"error": "send rows"}".'
    )


def test_unknown_image_endpoint_fails(models_bucket: OfflineState) -> None:
    sm = aws("sagemaker")
    sm.create_model(
        ModelName="custom",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "1.dkr.ecr.us-east-1.amazonaws.com/mine:1",
            "ModelDataUrl": "s3://models/x",
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="custom-config",
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": "custom",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="custom-ep", EndpointConfigName="custom-config")

    described = _wait("custom-ep")

    assert described["EndpointStatus"] == "Failed"
    assert (
        described["FailureReason"] == "no offline runner for image 1.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    )


def _metric_sum(endpoint: str, metric: str) -> float:
    stats = aws("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=time.time() - 600,
        EndTime=time.time() + 600,
        Period=3600,
        Statistics=["Sum"],
    )
    return sum(p["Sum"] for p in stats["Datapoints"])


def test_invocations_and_the_models_errors_are_counted_in_cloudwatch(models_bucket: OfflineState) -> None:
    aws("sagemaker").create_endpoint(EndpointName="counted", EndpointConfigName=_model("counted", 1))
    _wait("counted")
    _predict("counted")
    _predict("counted")
    # The model's server answers 500 to an empty JSON object (an exception in input_fn).
    with pytest.raises(ClientError):
        aws("sagemaker-runtime").invoke_endpoint(
            EndpointName="counted", ContentType="application/json", Body=b"{}"
        )

    assert _metric_sum("counted", "Invocations") == 3
    assert _metric_sum("counted", "Invocation5XXErrors") == 1
    assert _metric_sum("counted", "InvocationModelErrors") == 1
    assert _metric_sum("counted", "Invocation4XXErrors") == 0


def test_gap_moto_has_no_update_endpoint_and_a_canned_invoke(plain_moto: None) -> None:
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.models import SageMakerRuntimeBackend

    assert not hasattr(SageMakerResponse, "update_endpoint")
    assert "static data" in (inspect.getdoc(SageMakerRuntimeBackend.invoke_endpoint) or "")


BYTES_ECHO = """
import json

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return {"type": content_type, "is_bytes": isinstance(body, bytes), "head": list(body[:4])}

def predict_fn(data, model):
    return data

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""
PNG_HEAD = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def test_a_binary_body_reaches_the_model_unchanged(models_bucket: OfflineState) -> None:
    aws("sagemaker").create_endpoint(EndpointName="bin", EndpointConfigName=_model("bin", 1, BYTES_ECHO))
    assert _wait("bin")["EndpointStatus"] == "InService"
    response = aws("sagemaker-runtime").invoke_endpoint(
        EndpointName="bin", ContentType="image/png", Body=PNG_HEAD
    )
    assert json.loads(response["Body"].read()) == {
        "type": "image/png",
        "is_bytes": True,
        "head": [137, 80, 78, 71],
    }


def test_gap_moto_decodes_a_binary_invoke_body_as_utf8(plain_moto: None) -> None:
    with pytest.raises(UnicodeDecodeError):
        aws("sagemaker-runtime").invoke_endpoint(EndpointName="any", ContentType="image/png", Body=PNG_HEAD)
