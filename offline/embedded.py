"""`EmbeddedAws`: moto in this process, every seam installed, the SAM-built stack deployed: the offline
test harness's API.

with EmbeddedAws() as aws:
    aws.client("s3").upload_file("iris.csv", aws.outputs["InputBucketName"], "training/iris/iris.csv")
    [run] = aws.wait_for_executions(aws.outputs["PipelineStateMachineArn"], count=1)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from offline import DEFAULT_STACK_NAME, REGION
from offline.stack import DEFAULT_BUILD_DIR, Deployment, deploy

# Clients of the harness and the tests: no retries, so a fault or a bug shows at once.
_CLIENT_CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"})

# Credentials that can never reach a real account (moto accepts anything).
_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}

MOTO_CONFIG: dict[str, Any] = {
    # Without this moto's Step Functions returns canned histories instead of running the ASL.
    "stepfunctions": {"execute_state_machine": True},
    # Handlers run in-process through the Lambda seam, never in Docker.
    "lambda": {"use_docker": False},
}

TERMINAL_EXECUTION_STATES = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class EmbeddedAws:
    """An offline AWS account with the stack deployed, for tests and `make demo`."""

    def __init__(
        self,
        build_dir: Path = DEFAULT_BUILD_DIR,
        stack_name: str = DEFAULT_STACK_NAME,
        parameters: dict[str, str] | None = None,
        work_dir: Path | None = None,
        max_wait_seconds: float | None = None,
    ) -> None:
        self.build_dir = Path(build_dir)
        self.stack_name = stack_name
        self.parameters = dict(parameters or {})
        self._work_dir = Path(work_dir) if work_dir else None
        self._max_wait_seconds = max_wait_seconds
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self.state: Any = None
        self.deployment: Deployment | None = None
        self._clients: dict[str, Any] = {}

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> EmbeddedAws:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from moto import mock_aws

        from offline import seams
        from offline.seams import container_runtime

        for name, value in _DUMMY_ENV.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value  # restored by stop()
        # An endpoint override would send the in-process clients past moto to a real address, and a profile
        # could name credentials or a region of a real account.
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            self._saved_env[name] = os.environ.pop(name, None)
        if self._work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mlops-offline-")
            self._work_dir = Path(self._tmp.name)
        self._mock = mock_aws(config=MOTO_CONFIG)
        self._mock.start()
        try:
            # OFFLINE_CONTAINER_VENV=.venv-container: jobs and endpoints under the scikit-learn container's
            # Python, pins and toolkits (`make container-venv`) instead of this interpreter.
            state_kwargs: dict[str, Any] = {
                "work_dir": self._work_dir,
                "container_venvs": container_runtime.from_environment(),
            }
            if self._max_wait_seconds is not None:
                state_kwargs["max_wait_seconds"] = self._max_wait_seconds
            self.state = seams.OfflineState(**state_kwargs)
            seams.install(self.state)
            self.deployment = deploy(self.client, self.build_dir, self.stack_name, self.parameters)
            self.state.registry.register_functions(self.deployment.functions)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        from offline import seams

        try:
            if self.state is not None:
                # EventBridge deliveries run on worker threads: let them finish while moto is still there.
                self.state.registry.wait_for_async_invocations(timeout=10)
            seams.uninstall()
        finally:
            if self._mock is not None:
                self._mock.stop()
                self._mock = None
            self._clients.clear()
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._saved_env.clear()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
                self._work_dir = None

    # ------------------------------------------------------------ what tests use
    @property
    def outputs(self) -> dict[str, str]:
        assert self.deployment, "EmbeddedAws is not started"
        return self.deployment.outputs

    @property
    def faults(self) -> Any:
        """The seams' fault table: `fail_api(...)`, `force_job_outcome(...)`,
        `force_endpoint_update_outcome(...)`."""
        return self.state.faults

    @property
    def work_dir(self) -> Path:
        assert self._work_dir
        return self._work_dir

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=REGION, config=_CLIENT_CONFIG)  # type: ignore[call-overload]
        return self._clients[service]

    def wait_for_executions(
        self, state_machine_arn: str, count: int, timeout: float = 120.0, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Wait for at least `count` executions (started at/after `since`, epoch seconds), all finished.

        Returns their describe_execution answers, oldest first.
        """
        return wait_for_executions(self.client("stepfunctions"), state_machine_arn, count, timeout, since)


def list_executions(sfn: Any, state_machine_arn: str, since: float | None = None) -> list[dict[str, Any]]:
    found = [
        execution
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn)
        for execution in page["executions"]
        if since is None or execution["startDate"].timestamp() >= since
    ]
    return sorted(found, key=lambda e: e["startDate"])


def wait_for_executions(
    sfn: Any, state_machine_arn: str, count: int, timeout: float = 120.0, since: float | None = None
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        executions = list_executions(sfn, state_machine_arn, since)
        if len(executions) >= count and all(e["status"] in TERMINAL_EXECUTION_STATES for e in executions):
            return [sfn.describe_execution(executionArn=e["executionArn"]) for e in executions]
        if time.monotonic() > deadline:
            states = ", ".join(f"{e['name']}={e['status']}" for e in executions) or "none"
            raise TimeoutError(
                f"{state_machine_arn}: wanted {count} finished execution(s) in {timeout:.0f}s, have {states}"
            )
        time.sleep(0.1)
