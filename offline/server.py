"""`make local-up` / `make local-down`: the embedded AWS as a server on 127.0.0.1:$LOCAL_AWS_PORT.

`up` starts `python -m offline serve` as a detached process (pid and log in .offline/), waits until it has
deployed the stack, and prints the outputs. The server process runs moto's ThreadedMotoServer for outside
clients and moto's in-process mock with every seam for the handlers, jobs and endpoints it runs itself (both
share moto's backends). `down` stops that process by the pid it recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from offline import DEFAULT_STACK_NAME, REGION, ROOT, STATE_DIR, DeployError
from offline.stack import DEFAULT_BUILD_DIR, deploy

PID_FILE = STATE_DIR / "server.pid"
LOG_FILE = STATE_DIR / "server.log"
READY_FILE = STATE_DIR / "server.json"  # written once the stack is deployed: port, endpoint, stack, outputs
WORK_DIR = STATE_DIR / "server"
START_TIMEOUT_SECONDS = 120.0


def default_port() -> int:
    return int(os.environ.get("LOCAL_AWS_PORT", "4566"))


def endpoint_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def remote_client(service: str, port: int) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url(port),
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        config=Config(retries={"max_attempts": 2}),
    )


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


# ---------------------------------------------------------------- the server process


def serve(port: int, stack_name: str, build_dir: Path = DEFAULT_BUILD_DIR) -> int:
    """Run in the background process: moto server + seams, deploy, then wait for SIGTERM."""
    from moto import mock_aws
    from moto.server import ThreadedMotoServer

    from offline import seams
    from offline.embedded import MOTO_CONFIG
    from offline.seams import container_runtime

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "MOTO_PORT": str(port),
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    # In-process interception first: handlers, the ASL interpreter and the seams call moto directly.
    mock = mock_aws(config=MOTO_CONFIG)
    mock.start()
    shutil.rmtree(WORK_DIR, ignore_errors=True)  # every start is a fresh AWS: last run's job folders go
    # OFFLINE_CONTAINER_VENV=.venv-container: jobs and endpoints under the scikit-learn container's toolkits.
    state = seams.OfflineState(work_dir=WORK_DIR, container_venvs=container_runtime.from_environment())
    seams.install(state)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        # Deploy over HTTP, the way any outside client sees this AWS.
        deployment = deploy(lambda name: remote_client(name, port), build_dir, stack_name)
        state.registry.register_functions(deployment.functions)
        READY_FILE.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "port": port,
                    "endpoint_url": endpoint_url(port),
                    "stack_name": stack_name,
                    "outputs": deployment.outputs,
                    "not_created": deployment.not_created,
                },
                indent=2,
            )
        )
        print(f"ready: stack {stack_name} on {endpoint_url(port)}", flush=True)
        stop.wait()
        return 0
    except DeployError as error:
        print(f"DEPLOY FAILED: {error}", flush=True)
        return 1
    except Exception as error:  # noqa: BLE001 - the log's last line says what went wrong; the traceback is above
        traceback.print_exc()
        print(f"SERVER FAILED: {type(error).__name__}: {error}", flush=True)
        return 1
    finally:
        server.stop()
        seams.uninstall()
        mock.stop()
        READY_FILE.unlink(missing_ok=True)
        PID_FILE.unlink(missing_ok=True)


# ---------------------------------------------------------------- up / down


def up(port: int, stack_name: str = DEFAULT_STACK_NAME, build_dir: Path = DEFAULT_BUILD_DIR) -> int:
    pid = running_pid()
    if pid:
        print(f"Already running (pid {pid}); `make local-down` stops it. Outputs:")
        return print_outputs(port)
    if _port_in_use(port):
        print(f"Port {port} is in use by another program: set LOCAL_AWS_PORT to a free port.")
        return 1
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    READY_FILE.unlink(missing_ok=True)
    with LOG_FILE.open("w") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "offline", "serve", "--port", str(port)),
                *("--stack-name", stack_name, "--build-dir", str(Path(build_dir).resolve())),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the make that started it
        )
    PID_FILE.write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not READY_FILE.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"The server did not start (see {LOG_FILE}):\n{_tail(LOG_FILE)}")
            if process.poll() is None:
                process.terminate()
            PID_FILE.unlink(missing_ok=True)
            return 1
        time.sleep(0.2)
    print(f"Embedded AWS on {endpoint_url(port)} (pid {process.pid}, log {LOG_FILE})")
    return print_outputs(port)


def down() -> int:
    pid = running_pid()
    if pid is None:
        PID_FILE.unlink(missing_ok=True)
        READY_FILE.unlink(missing_ok=True)
        print("Not running.")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    READY_FILE.unlink(missing_ok=True)
    print(f"Stopped the embedded AWS (pid {pid}).")
    return 0


def print_outputs(port: int) -> int:
    ready = json.loads(READY_FILE.read_text()) if READY_FILE.is_file() else {}
    stack_name = ready.get("stack_name", DEFAULT_STACK_NAME)
    port = ready.get("port", port)
    stacks = remote_client("cloudformation", port).describe_stacks(StackName=stack_name)["Stacks"]
    print(f"Stack {stack_name}:")
    for output in sorted(stacks[0].get("Outputs", []), key=lambda o: o["OutputKey"]):
        print(f"  {output['OutputKey']:<28} {output['OutputValue']}")
    for line in ready.get("not_created", []):
        print(f"  warning: moto's CloudFormation did not create {line}")
    url = endpoint_url(port)
    print(
        "\nTry (see docs/offline.md):\n"
        f"  aws --endpoint-url {url} cloudformation describe-stacks --stack-name {stack_name}\n"
        f"  aws --endpoint-url {url} s3 cp offline/sample_data/iris/pipeline.json s3://<InputBucketName>/training/iris/\n"
        f"  aws --endpoint-url {url} s3 cp offline/sample_data/iris/iris.csv s3://<InputBucketName>/training/iris/\n"
        f"  aws --endpoint-url {url} stepfunctions list-executions --state-machine-arn <PipelineArn>\n"
        "  make local-down"
    )
    return 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
