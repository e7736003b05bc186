"""`make local-up` / `make local-down` (python -m offline up|down): a background server any client can use."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "offline" / "sample_data" / "iris"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str], str]]:
    port = _free_port()
    env = {
        **os.environ,
        "OFFLINE_STATE_DIR": str(tmp_path_factory.mktemp("offline-state")),
        "LOCAL_AWS_PORT": str(port),
    }
    up = _cli("up", env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield port, env, up.stdout
    finally:
        _cli("down", env=env)


def _client(service: str, port: int) -> Any:
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_up_prints_the_outputs_that_describe_stacks_returns(server: tuple[int, dict[str, str], str]) -> None:
    port, _, printed = server
    [stack] = _client("cloudformation", port).describe_stacks(StackName="mlops-local")["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert "InputBucketName" in outputs
    for key, value in outputs.items():
        assert f"{key}" in printed and value in printed


def test_standard_clients_see_the_stack_resources(server: tuple[int, dict[str, str], str]) -> None:
    port, _, _ = server
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in _client("cloudformation", port).describe_stacks(StackName="mlops-local")["Stacks"][0][
            "Outputs"
        ]
    }
    s3 = _client("s3", port)
    s3.put_object(Bucket=outputs["InputBucketName"], Key="notes/readme.txt", Body=b"not a dataset")
    assert (
        s3.get_object(Bucket=outputs["InputBucketName"], Key="notes/readme.txt")["Body"].read()
        == b"not a dataset"
    )
    if "PipelineStateMachineArn" in outputs:
        machine = _client("stepfunctions", port).describe_state_machine(
            stateMachineArn=outputs["PipelineStateMachineArn"]
        )
        assert machine["status"] == "ACTIVE"


def test_a_dataset_uploaded_over_http_is_served_over_http(
    server: tuple[int, dict[str, str], str], tmp_path: Path
) -> None:
    port, env, _ = server
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in _client("cloudformation", port).describe_stacks(StackName="mlops-local")["Stacks"][0][
            "Outputs"
        ]
    }
    s3, sfn = _client("s3", port), _client("stepfunctions", port)
    for name in ("pipeline.json", "iris.csv"):
        s3.upload_file(str(SAMPLE / name), outputs["InputBucketName"], f"training/served/{name}")
    deadline = time.monotonic() + 120
    executions: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=outputs["PipelineStateMachineArn"])["executions"]
        if executions and all(e["status"] != "RUNNING" for e in executions):
            break
        time.sleep(0.5)
    assert [e["status"] for e in executions] == ["SUCCEEDED"]
    body = (
        _client("sagemaker-runtime", port)
        .invoke_endpoint(
            EndpointName="mlops-local-served",
            ContentType="text/csv",
            Accept="application/json",
            Body=b"5.1,3.5,1.4,0.2",
        )["Body"]
        .read()
    )
    assert json.loads(body)["predictions"][0]["label"] == "setosa"

    # The CLI's helpers against the same server: invoke with a file, fire a cost-guard schedule (dry run).
    rows = tmp_path / "rows.csv"
    rows.write_text("7.7,3.0,6.1,2.3\n")
    invoked = _cli("invoke", "mlops-local-served", str(rows), env=env)
    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    assert json.loads(invoked.stdout)["predictions"][0]["label"] == "virginica"
    fired = _cli("fire-schedule", outputs["EndpointSweepRuleName"], env=env)
    assert fired.returncode == 0, fired.stdout + fired.stderr
    assert "(dry run)" in fired.stdout
    assert "endpoints: examined 1" in fired.stdout
    endpoints = _client("sagemaker", port).list_endpoints()["Endpoints"]
    assert [e["EndpointName"] for e in endpoints] == ["mlops-local-served"]  # a dry run deletes nothing


def test_a_second_up_reports_the_running_server(server: tuple[int, dict[str, str], str]) -> None:
    _, env, _ = server
    again = _cli("up", env=env)
    assert again.returncode == 0
    assert "Already running" in again.stdout


def test_down_stops_the_server_and_frees_the_port(server: tuple[int, dict[str, str], str]) -> None:
    # Runs last in this module: it stops the module's server.
    port, env, _ = server
    state_dir = Path(env["OFFLINE_STATE_DIR"])
    pid = int((state_dir / "server.pid").read_text())
    down = _cli("down", env=env)
    assert down.returncode == 0, down.stdout
    assert not (state_dir / "server.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
