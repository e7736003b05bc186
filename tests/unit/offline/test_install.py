"""The seam set as a whole: pinned to moto 5.2.5, idempotent, fully reversible, and working in server mode."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from offline import seams
from offline.seams import MOTO_VERSION, OfflineState, _patching
from tests.unit.offline.conftest import ROLE, make_zip


def _targets() -> list[tuple[Any, str]]:
    """Every moto/botocore attribute a seam replaces (or wraps): each must exist in the pinned moto."""
    import botocore.client
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.core.responses import BaseResponse
    from moto.events.models import Rule
    from moto.s3.models import FakeBucket
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
        state_task_service_callback,
        state_task_service_sfn,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    return [
        (botocore.client.BaseClient, "_make_api_call"),
        (LambdaFunction, "_invoke_lambda"),
        (LambdaFunction, "create_from_cloudformation_json"),
        (LambdaSimpleBackend, "invoke"),
        (LambdaBackend, "invoke"),
        (StateMachine, "create_from_cloudformation_json"),
        (StateMachine, "update_from_cloudformation_json"),
        (StateMachine, "delete_from_cloudformation_json"),
        (FakeBucket, "create_from_cloudformation_json"),
        (state_task_factory, "state_task_service_for"),
        (state_task_service_callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK"),
        (state_task_service_callback, "StateTaskServiceCallback"),
        (state_task_service_aws_sdk, "_SERVICE_ERROR_NAMES"),
        (state_task_service_aws_sdk.StateTaskServiceAwsSdk, "_normalise_exception_name"),
        (state_task_service_sfn.StateTaskServiceSfn, "_normalise_parameters"),
        (state_task_service_sfn.StateTaskServiceSfn, "_to_boto_request"),
        (state_task_service_sfn.StateTaskServiceSfn, "_from_boto_response"),
        (WaitFunction, "_wait_interval"),
        (retrier_decl, "time"),
        (SageMakerResponse, "create_training_job"),
        (SageMakerResponse, "create_processing_job"),
        (SageMakerResponse, "create_transform_job"),
        (SageMakerResponse, "stop_processing_job"),
        (SageMakerModelBackend, "create_endpoint"),
        (SageMakerModelBackend, "delete_endpoint"),
        (SageMakerModelBackend, "create_model_package"),
        (SageMakerModelBackend, "update_model_package"),
        (SageMakerRuntimeResponse, "invoke_endpoint"),
        (SageMakerRuntimeResponse, "use_raw_body"),
        (Rule, "send_to_targets"),
        (BaseResponse, "call_action"),
        (SageMakerModelBackend, "add_tags"),
        (SageMakerModelBackend, "_get_resource_from_arn"),
    ]


def test_pinned_moto_version_and_every_seam_target_exists() -> None:
    import moto

    assert moto.__version__ == MOTO_VERSION
    for owner, name in _targets():
        assert hasattr(owner, name), f"{owner}.{name} is gone: revisit offline/seams"


def test_install_refuses_another_moto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import moto

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(seams.MotoVersionMismatch, match=r"moto 5\.2\.5 internals, but moto 5\.3\.0"):
        seams.install(OfflineState(work_dir=tmp_path))
    assert seams.current_state() is None


def test_install_is_idempotent_and_uninstall_restores_everything(tmp_path: Path) -> None:
    before = {(id(owner), name): _patching.original(owner, name) for owner, name in _targets()}
    state = OfflineState(work_dir=tmp_path)
    assert seams.install(state) is state
    assert seams.install(state) is state
    assert seams.install() is state
    changed = [name for owner, name in _targets() if getattr(owner, name) is not before[(id(owner), name)]]
    assert "_invoke_lambda" in changed and "send_to_targets" in changed

    seams.uninstall()
    seams.uninstall()

    for owner, name in _targets():
        stored = (
            owner.__dict__.get(name)
            if isinstance(owner, type) and name in owner.__dict__
            else getattr(owner, name)
        )
        assert stored is before[(id(owner), name)], f"{name} not restored"
    from moto.sagemaker.responses import SageMakerResponse

    assert not hasattr(SageMakerResponse, "update_endpoint")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MOTO_PORT", str(port))  # the ASL interpreter's own clients call localhost:$MOTO_PORT
    seams.install(OfflineState(work_dir=tmp_path / "offline", endpoint_url=url, max_wait_seconds=0.01))
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto_server.start()
    try:
        config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        requests.post(f"{url}/moto-api/config", json=config, timeout=5).raise_for_status()
        yield url
    finally:
        requests.post(f"{url}/moto-api/reset", timeout=5)
        moto_server.stop()
        seams.uninstall()


def test_server_mode_handler_reaches_the_server_from_a_state_machine(server: str) -> None:
    def client(service: str) -> Any:
        return boto3.client(service, region_name="us-east-1", endpoint_url=server)

    client("iam").create_role(RoleName="offline-test", AssumeRolePolicyDocument="{}")
    client("s3").create_bucket(Bucket="server-bucket")
    code = (
        "import boto3\n"
        "def handler(e, c):\n"
        "    boto3.client('s3').put_object(Bucket='server-bucket', Key='k', Body=b'v')\n"
        "    return 'done'\n"
    )
    arn = client("lambda").create_function(
        FunctionName="srv",
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
    )["FunctionArn"]
    definition = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": arn, "End": True}},
    }
    sfn = client("stepfunctions")
    machine = sfn.create_state_machine(name="srv", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=machine, name="one", input="{}")["executionArn"]
    deadline = time.monotonic() + 20
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert described["status"] == "SUCCEEDED", described
    assert "done" in described["output"], described
    assert client("s3").get_object(Bucket="server-bucket", Key="k")["Body"].read() == b"v"
