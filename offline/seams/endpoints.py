"""SageMaker endpoints really serve. Gap: moto 5.2.5 marks endpoints InService at once and serves
nothing (`invoke_endpoint` returns a canned body, and decodes a binary body such as a PNG as UTF-8, which
fails); `update_endpoint` is not implemented.

- CreateEndpoint (API or CloudFormation): Creating, then a local inference server (inference_server.py, a
  subprocess on 127.0.0.1, on a port the OS picks) loads the model: ModelDataUrl
  (model.tar.gz) unpacked, the code from SAGEMAKER_SUBMIT_DIRECTORY (sourcedir.tar.gz in S3) or else
  model.tar.gz's `code/`, the program SAGEMAKER_PROGRAM (default inference.py). InService when /ping answers;
  Failed with the reason (the server's last log line) if it does not within `endpoint_start_timeout_seconds`,
  or if the image has no offline runner.
- UpdateEndpoint: blue/green. Updating; the new config's server starts and must answer /ping; then traffic
  switches, the endpoint shows the new EndpointConfigName, ProductionVariants and LastModifiedTime, and the
  old server stops. If the new server fails: the endpoint stays InService on the old config and FailureReason
  says why (rollback).
- sagemaker-runtime InvokeEndpoint forwards Body, ContentType and Accept to the server and returns its answer;
  a 4xx/5xx answer becomes ModelError (HTTP 424) with the server's message. Each call adds 1 to the CloudWatch
  metric AWS/SageMaker Invocations (EndpointName, VariantName), which idle-endpoint checks read; a model's
  error answer also to the error metrics SageMaker publishes, which the staging soak reads.
- DeleteEndpoint stops the server; uninstall stops them all. The first production variant serves all traffic.

moto internals touched: `moto.sagemaker.models.SageMakerModelBackend.create_endpoint` / `.delete_endpoint`
(wrapped); `moto.sagemaker.responses.SageMakerResponse.update_endpoint` (added); `FakeEndpoint` attributes
(endpoint_status, failure_reason, endpoint_config_name, production_variants, last_modified_time) and
`FakeEndpoint._process_production_variants`; `moto.sagemakerruntime.responses.SageMakerRuntimeResponse.
invoke_endpoint` (replaced); the S3 and CloudWatch backends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.core.exceptions import ServiceException

from offline.seams import _patching, container_runtime, job_contract

SERVER_SCRIPT = Path(__file__).with_name("inference_server.py")
# Under the container's toolkits a server first pip-installs the model's code and requirements.txt.
CONTAINER_START_SECONDS = 300.0


class ModelError(ServiceException):
    """sagemaker-runtime's answer when the model's server returns an error (HTTP 424)."""

    code = "ModelError"


class RuntimeValidationError(ServiceException):
    code = "ValidationError"


class EndpointError(Exception):
    """The endpoint's model cannot be served offline; the message becomes FailureReason."""


@dataclass
class Fleet:
    """One running inference server: what an endpoint config's production variant is served by."""

    endpoint_name: str
    config_name: str
    variant_name: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


_fleets: dict[tuple[str, str, str], Fleet] = {}
_lock = threading.RLock()


def fleet_for(account_id: str, region: str, endpoint_name: str) -> Fleet | None:
    return _fleets.get((account_id, region, endpoint_name))


def _listening_socket() -> socket.socket:
    """A socket on a port the OS picks, bound and listening before the server starts.

    Probing a port and letting the child bind it later races with other processes (parallel test workers,
    a local-up server) that probe the same port; handing over a bound socket does not.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


def _read_s3(s3: Any, uri: str, what: str) -> bytes:
    bucket, key = job_contract.parse_s3_uri(uri)
    try:
        return s3.get_object(bucket, key).value
    except Exception as error:
        raise EndpointError(f"{what} {uri} cannot be read: {error}") from error


def _last_log_line(path: Path) -> str:
    if not path.is_file():
        return ""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _server_runtime(
    state: Any, image: str, environment: dict[str, str], root: Path
) -> tuple[str, str, dict[str, str], float]:
    """(python, toolkit, environment, start timeout) of the server: the container's stack when a container
    virtualenv serves the image (an overlay per fleet), else the stand-in on this interpreter."""
    env = {**os.environ, **environment, "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    start_timeout = float(state.endpoint_start_timeout_seconds)
    venv = container_runtime.for_image(getattr(state, "container_venvs", {}) or {}, image)
    if venv is None:
        return state.python or sys.executable, "standin", env, start_timeout
    # The container's serving stack pip-installs the code directory (and its requirements.txt) first.
    env.update(container_runtime.pip_environment())
    python = str(container_runtime.overlay(venv, root / "venv"))
    return python, "container", env, max(start_timeout, CONTAINER_START_SECONDS)


def start_fleet(backend: Any, endpoint_name: str, config_name: str, state: Any) -> Fleet:
    """Start and ping the server for config_name's first production variant (raise EndpointError on
    failure)."""
    config = backend.endpoint_configs.get(config_name)
    if config is None:
        raise EndpointError(f"endpoint config {config_name} does not exist")
    variant = (config.production_variants or [{}])[0]
    model = backend._models.get(variant.get("ModelName"))
    if model is None:
        raise EndpointError(
            f"model {variant.get('ModelName')} of endpoint config {config_name} does not exist"
        )
    container = model.primary_container or (model.containers or [{}])[0]
    image = container.get("Image", "")
    try:
        job_contract.check_image(image)
    except job_contract.JobError as error:
        raise EndpointError(str(error)) from error
    environment = {k: str(v) for k, v in (container.get("Environment") or {}).items()}
    s3 = job_contract.s3_backend(backend.account_id, backend.region_name)

    root = state.work_dir / "endpoints" / endpoint_name / f"{config_name}-{uuid.uuid4().hex[:6]}"
    model_dir, code_dir = root / "model", root / "code"
    model_dir.mkdir(parents=True)
    if container.get("ModelDataUrl"):
        (root / "model.tar.gz").write_bytes(_read_s3(s3, container["ModelDataUrl"], "ModelDataUrl"))
        job_contract.extract_tar(root / "model.tar.gz", model_dir)
    submit = job_contract.decode_hyperparameter(environment.get("SAGEMAKER_SUBMIT_DIRECTORY", ""))
    if isinstance(submit, str) and submit.startswith("s3://"):
        (root / "sourcedir.tar.gz").write_bytes(_read_s3(s3, submit, "SAGEMAKER_SUBMIT_DIRECTORY"))
        job_contract.extract_tar(root / "sourcedir.tar.gz", code_dir)
    elif (model_dir / "code").is_dir():
        shutil.copytree(model_dir / "code", code_dir)
    program = str(job_contract.decode_hyperparameter(environment.get("SAGEMAKER_PROGRAM", "inference.py")))

    python, toolkit, env, start_timeout = _server_runtime(state, image, environment, root)
    env["SM_MODEL_DIR"] = str(model_dir)
    listener = _listening_socket()
    port = listener.getsockname()[1]
    with listener, (root / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [
                python,
                str(SERVER_SCRIPT),
                "--model-dir",
                str(model_dir),
                "--code-dir",
                str(code_dir),
                "--program",
                program,
                "--toolkit",
                toolkit,
                "--listen-fd",
                str(listener.fileno()),
            ],
            pass_fds=(listener.fileno(),),
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    fleet = Fleet(endpoint_name, config_name, variant.get("VariantName", "AllTraffic"), port, root, process)
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(
                f"the inference server for model {model.model_name} exited ({process.returncode}): "
                f"{_last_log_line(root / 'server.log')}"
            )
        try:
            with urllib.request.urlopen(f"{fleet.url}/ping", timeout=2) as response:  # noqa: S310 - local server
                if response.status == 200:
                    return fleet
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    fleet.stop()
    raise EndpointError(
        f"the inference server for model {model.model_name} did not answer /ping within "
        f"{start_timeout:g} s: {_last_log_line(root / 'server.log')}"
    )


def _set(endpoint: Any, **values: Any) -> None:
    from moto.core.utils import utcnow

    for key, value in values.items():
        setattr(endpoint, key, value)
    endpoint.last_modified_time = utcnow()


def _launch(backend: Any, endpoint: Any, state: Any) -> None:
    key = (backend.account_id, backend.region_name, endpoint.endpoint_name)

    def work() -> None:
        try:
            fleet = start_fleet(backend, endpoint.endpoint_name, endpoint.endpoint_config_name, state)
        except Exception as error:  # noqa: BLE001 - any failure to serve ends Failed, with the reason
            _set(endpoint, endpoint_status="Failed", failure_reason=str(error))
            return
        with _lock:
            if backend.endpoints.get(endpoint.endpoint_name) is not endpoint:  # deleted meanwhile
                fleet.stop()
                return
            _fleets[key] = fleet
        _set(endpoint, endpoint_status="InService", failure_reason=None)

    _set(endpoint, endpoint_status="Creating", failure_reason=None)
    _in_background(f"endpoint-{endpoint.endpoint_name}", work, state)


def _in_background(name: str, work: Any, state: Any) -> None:
    """Run an endpoint's start or update in a thread, as settling work (Wait states last until it is done)."""

    def run() -> None:
        try:
            work()
        finally:
            state.settling.end()

    state.settling.begin()
    threading.Thread(target=run, name=name, daemon=True).start()


def update_endpoint(backend: Any, endpoint_name: str, config_name: str, state: Any) -> Any:
    from moto.sagemaker.exceptions import ValidationError

    endpoint = backend.endpoints.get(endpoint_name)
    if endpoint is None:
        arn = endpoint_arn(backend, endpoint_name)
        raise ValidationError(message=f"Could not find endpoint '{arn}'.")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(
            message=f"Cannot update in-progress endpoint '{endpoint.arn}' "
            f"(status {endpoint.endpoint_status})."
        )
    config = backend.endpoint_configs.get(config_name)
    if config is None:
        raise ValidationError(message=f"Could not find endpoint configuration '{config_name}'.")
    old_config = endpoint.endpoint_config_name
    key = (backend.account_id, backend.region_name, endpoint_name)

    forced = state.faults.take_endpoint_outcome()

    def work() -> None:
        if forced is not None:  # a test asked for this update to end in another status
            _set(endpoint, endpoint_status=forced.status, failure_reason=forced.reason)
            return
        try:
            fleet = start_fleet(backend, endpoint_name, config_name, state)
        except Exception as error:  # noqa: BLE001 - a failed new fleet rolls back to the old one
            _set(
                endpoint,
                endpoint_status="InService",
                failure_reason=(
                    f"Failed to update endpoint to {config_name}, rolled back to {old_config}: {error}"
                ),
            )
            return
        with _lock:
            old = _fleets.get(key)
            _fleets[key] = fleet
        _set(
            endpoint,
            endpoint_config_name=config_name,
            production_variants=endpoint._process_production_variants(config.production_variants),
            endpoint_status="InService",
            failure_reason=None,
        )
        if old is not None:
            old.stop()

    _set(endpoint, endpoint_status="Updating")
    _in_background(f"endpoint-update-{endpoint_name}", work, state)
    return endpoint


def endpoint_arn(backend: Any, name: str) -> str:
    return f"arn:aws:sagemaker:{backend.region_name}:{backend.account_id}:endpoint/{name.lower()}"


def stop_fleet(account_id: str, region: str, endpoint_name: str) -> None:
    with _lock:
        fleet = _fleets.pop((account_id, region, endpoint_name), None)
    if fleet is not None:
        fleet.stop()


def _count_invocation(
    account_id: str,
    region: str,
    endpoint_name: str,
    variant: str,
    metrics: tuple[str, ...] = ("Invocations",),
) -> None:
    """Add 1 to each of the endpoint's AWS/SageMaker invocation metrics named: Invocations for every call;
    for a model's non-2xx answer or none at all, the error metrics SageMaker publishes
    (https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html), which the rollback alarms
    and the staging soak read."""
    try:
        from moto.cloudwatch.models import cloudwatch_backends

        dimensions = [
            {"Name": "EndpointName", "Value": endpoint_name},
            {"Name": "VariantName", "Value": variant},
        ]
        cloudwatch_backends[account_id][region].put_metric_data(
            "AWS/SageMaker",
            [
                {"MetricName": name, "Value": 1.0, "Unit": "None", "Dimensions": dimensions}
                for name in metrics
            ],
        )
    except Exception:  # noqa: BLE001, S110 - the metric is a convenience; never fail an invocation over it
        pass


def invoke_endpoint(self: Any) -> Any:
    """SageMakerRuntimeResponse.invoke_endpoint: forward to the endpoint's inference server."""
    from moto.sagemaker.models import sagemaker_backends

    name = self.path.split("/")[2]  # /endpoints/<name>/invocations (the body may be binary, never JSON here)
    fleet = fleet_for(self.current_account, self.region, name)
    if fleet is None:
        endpoint = sagemaker_backends[self.current_account][self.region].endpoints.get(name)
        if endpoint is None:
            raise RuntimeValidationError(f"Endpoint {name} of account {self.current_account} not found.")
        reason = f": {endpoint.failure_reason}" if endpoint.failure_reason else ""
        raise RuntimeValidationError(
            f"Endpoint {name} of account {self.current_account} is not serving "
            f"(status {endpoint.endpoint_status}{reason})."
        )
    body = self.raw_body if isinstance(self.raw_body, bytes) else str(self.raw_body or "").encode()
    headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"}
    if self.headers.get("Accept"):
        headers["Accept"] = self.headers["Accept"]
    url = f"{fleet.url}/invocations"  # always http://127.0.0.1:<port>: our own inference server
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    _count_invocation(self.current_account, self.region, name, fleet.variant_name)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our local server
            answer, content_type = (
                response.read(),
                response.headers.get("Content-Type", "application/json"),
            )
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", errors="replace")
        kind = "client" if error.code < 500 else "server"
        _count_invocation(
            self.current_account,
            self.region,
            name,
            fleet.variant_name,
            ("Invocation4XXErrors" if error.code < 500 else "Invocation5XXErrors", "InvocationModelErrors"),
        )
        failure = ModelError(f'Received {kind} error ({error.code}) from primary with message "{text}".')
        failure.OriginalStatusCode = error.code
        failure.OriginalMessage = text
        raise failure from error
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        _count_invocation(
            self.current_account, self.region, name, fleet.variant_name, ("InvocationModelErrors",)
        )
        raise ModelError(f"The inference server of endpoint {name} did not answer: {error}") from error
    return (
        200,
        {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": fleet.variant_name},
        answer,
    )


def install(state: Any) -> None:
    from moto.core.responses import ActionResult
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    create = _patching.original(SageMakerModelBackend, "create_endpoint")
    delete = _patching.original(SageMakerModelBackend, "delete_endpoint")
    _patching.original(SageMakerRuntimeResponse, "invoke_endpoint")

    def create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        endpoint = create(self, endpoint_name, endpoint_config_name, tags)
        _launch(self, endpoint, state)
        return endpoint

    def delete_endpoint(self: Any, endpoint_name: str) -> None:
        delete(self, endpoint_name)
        stop_fleet(self.account_id, self.region_name, endpoint_name)

    def update_endpoint_response(self: Any) -> Any:
        endpoint = update_endpoint(
            self.sagemaker_backend,
            self._get_param("EndpointName"),
            self._get_param("EndpointConfigName"),
            state,
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    _patching.replace(SageMakerModelBackend, "create_endpoint", create_endpoint)
    _patching.replace(SageMakerModelBackend, "delete_endpoint", delete_endpoint)
    _patching.replace(SageMakerResponse, "update_endpoint", update_endpoint_response, must_exist=False)
    _patching.replace(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
    # moto decodes every request body as UTF-8 (a PNG body fails before invoke_endpoint runs); AWS passes
    # InvokeEndpoint's body through as bytes.
    _patching.replace(SageMakerRuntimeResponse, "use_raw_body", True, must_exist=False)  # inherited


def uninstall() -> None:
    with _lock:
        fleets = list(_fleets.values())
        _fleets.clear()
    for fleet in fleets:
        fleet.stop()
