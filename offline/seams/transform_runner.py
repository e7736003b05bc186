"""SageMaker batch transform jobs really run the model on the files. Gap: moto 5.2.5 marks a transform
job Completed at create and runs nothing; duplicate job names silently overwrite the old job (AWS:
ResourceInUse).

On CreateTransformJob (from any client or a `createTransformJob.sync` task) the job is InProgress and a worker
thread does what Batch Transform does, in `<work_dir>/transform/<job>/`:
- starts the model's container: the endpoint seam's inference server with the Model's ModelDataUrl, code
  (SAGEMAKER_SUBMIT_DIRECTORY or model.tar.gz's `code/`), SAGEMAKER_PROGRAM and Environment, plus the job's
  Environment; the image must have an offline runner (as for jobs and endpoints);
- reads every object under TransformInput.DataSource.S3DataSource.S3Uri (S3Prefix), splits it into records
  (SplitType Line: one record per non-empty line; None: the whole object), groups them into mini-batches
  (BatchStrategy MultiRecord: as many records as fit MaxPayloadInMB, default 6; SingleRecord: one) and POSTs
  each to /invocations with ContentType and TransformOutput.Accept;
- any answer but 2xx fails the job, as on AWS: FailureReason names the object, the status and the body's
  first line (the model must answer every record it is given);
- a mini-batch's answer must have one line per record when records are joined or assembled by line
  (AssembleWith Line); JoinSource Input appends each answer line to its input record with "," (CSV, what AWS
  does for text/csv); InputFilter, OutputFilter other than "$" are refused (not emulated);
- writes `<S3OutputPath>/<key relative to the input prefix>.out` (records joined by AssembleWith: Line ->
  newline-terminated lines, None -> concatenated).

moto internals touched: `moto.sagemaker.responses.SageMakerResponse.create_transform_job` (wrapped:
duplicate check, run); `FakeTransformJob` attributes read by its `response_object` (transform_job_status,
failure_reason, transform_start_time, transform_end_time, last_modified_time);
`SageMakerModelBackend._models`; the S3 backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.seams import _patching, endpoints, job_contract, job_process

DEFAULT_MAX_PAYLOAD_MB = 6  # AWS's default MaxPayloadInMB
DEFAULT_INVOCATION_TIMEOUT = 600  # AWS's default ModelClientConfig.InvocationsTimeoutInSeconds
ALL = "$"


class TransformError(Exception):
    """The transform cannot run or the model failed; the message becomes FailureReason."""


@dataclass
class TransformRun:
    name: str
    root: Path
    done: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen[bytes] | None = None

    def stop_server(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


_runs: dict[str, TransformRun] = {}
_runs_lock = threading.Lock()


def wait_for_transform(name: str, timeout: float) -> None:
    """Block until the named transform job ends (or timeout); at once for a job this seam does not run."""
    run = _runs.get(name)
    if run is not None:
        run.done.wait(timeout)


# ---------------------------------------------------------------- the model's container


def _model_files(backend: Any, model_name: str, root: Path) -> tuple[Path, Path, str, dict[str, str]]:
    """Unpack the Model's artifact and code under root: (model dir, code dir, program, container env)."""
    model = backend._models.get(model_name)
    if model is None:
        raise TransformError(f"ClientError: Could not find model {model_name!r}")
    container = model.primary_container or (model.containers or [{}])[0]
    try:
        job_contract.check_image(container.get("Image", ""))
    except job_contract.JobError as error:
        raise TransformError(str(error)) from error
    environment = {k: str(v) for k, v in (container.get("Environment") or {}).items()}
    s3 = job_contract.s3_backend(backend.account_id, backend.region_name)
    model_dir, code_dir = root / "model", root / "code"
    model_dir.mkdir(parents=True)
    try:
        if container.get("ModelDataUrl"):
            tar = root / "model.tar.gz"
            tar.write_bytes(endpoints._read_s3(s3, container["ModelDataUrl"], "ModelDataUrl"))
            job_contract.extract_tar(tar, model_dir)
        submit = job_contract.decode_hyperparameter(environment.get("SAGEMAKER_SUBMIT_DIRECTORY", ""))
        if isinstance(submit, str) and submit.startswith("s3://"):
            tar = root / "sourcedir.tar.gz"
            tar.write_bytes(endpoints._read_s3(s3, submit, "SAGEMAKER_SUBMIT_DIRECTORY"))
            job_contract.extract_tar(tar, code_dir)
        elif (model_dir / "code").is_dir():
            shutil.copytree(model_dir / "code", code_dir)
    except endpoints.EndpointError as error:
        raise TransformError(f"ClientError: {error}") from error
    program = str(job_contract.decode_hyperparameter(environment.get("SAGEMAKER_PROGRAM", "inference.py")))
    return model_dir, code_dir, program, environment


def _start_server(run: TransformRun, backend: Any, job: Any, state: Any) -> str:
    """Start the model's inference server for this job; its base URL once /ping answers."""
    model_dir, code_dir, program, environment = _model_files(backend, job.model_name, run.root)
    environment.update({k: str(v) for k, v in (job.environment or {}).items()})
    listener = endpoints._listening_socket()
    port = listener.getsockname()[1]
    log_path = run.root / "server.log"
    with listener, log_path.open("wb") as log:
        env = {**os.environ, **environment, "PYTHONUNBUFFERED": "1", "SM_MODEL_DIR": str(model_dir)}
        env.pop("AWS_ENDPOINT_URL", None)
        run.process = subprocess.Popen(
            [
                state.python or sys.executable,
                str(endpoints.SERVER_SCRIPT),
                "--model-dir",
                str(model_dir),
                "--code-dir",
                str(code_dir),
                "--program",
                program,
                "--listen-fd",
                str(listener.fileno()),
            ],
            pass_fds=(listener.fileno(),),
            cwd=run.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + float(state.endpoint_start_timeout_seconds)
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            raise TransformError(
                f"ClientError: the model container for {job.model_name} exited ({run.process.returncode}): "
                f"{endpoints._last_log_line(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:  # noqa: S310 - local server
                if response.status == 200:
                    return url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise TransformError(
        f"ClientError: the model container did not answer /ping within "
        f"{state.endpoint_start_timeout_seconds:g} s: {endpoints._last_log_line(log_path)}"
    )


# ---------------------------------------------------------------- records, mini-batches, joins


def split_records(data: bytes, split_type: str) -> list[bytes]:
    """SplitType Line: every non-empty line (without its line break); None: the object as one record."""
    if split_type == "Line":
        return [line for line in data.splitlines() if line.strip()]
    if split_type in ("None", ""):
        return [data]
    raise TransformError(f"ClientError: SplitType {split_type} is not emulated offline (use Line or None)")


def mini_batches(records: list[bytes], strategy: str, max_payload_bytes: int) -> list[list[bytes]]:
    """SingleRecord: one record each; MultiRecord: consecutive records up to the payload limit."""
    if strategy != "MultiRecord":
        return [[record] for record in records]
    batches: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if len(record) + 1 > max_payload_bytes:
            raise TransformError(
                f"ClientError: a record of {len(record)} bytes exceeds MaxPayloadInMB "
                f"({max_payload_bytes // (1024 * 1024)} MB)"
            )
        if current and size + len(record) + 1 > max_payload_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record) + 1
    if current:
        batches.append(current)
    return batches


def _invoke(url: str, body: bytes, content_type: str, accept: str, timeout: float) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - the local model server
        f"{url}/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": accept},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the local model server
            return bytes(response.read())
    except TimeoutError as error:
        raise TransformError(
            f"ClientError: the model container did not answer a mini-batch within {timeout:g} s "
            "(ModelClientConfig.InvocationsTimeoutInSeconds)"
        ) from error
    except urllib.error.HTTPError as error:
        message = error.read().decode("utf-8", "replace").strip().splitlines()
        raise TransformError(
            f"ClientError: the model container answered {error.code} to a mini-batch: "
            f"{message[0] if message else error.reason}"
        ) from error


def answer_lines(answer: bytes, expected: int, where: str) -> list[bytes]:
    lines = answer.splitlines()
    if len(lines) != expected:
        raise TransformError(
            f"ClientError: {where}: the model answered {len(lines)} line(s) for {expected} record(s); "
            "joining input and output needs one answer line per record"
        )
    return lines


def _transform_object(
    url: str, data: bytes, job: Any, where: str, *, content_type: str, accept: str
) -> list[bytes]:
    """The output records of one input object, joined with their input when asked."""
    source = job.transform_input or {}
    output = job.transform_output or {}
    processing = job.data_processing or {}
    join = processing.get("JoinSource", "None")
    by_line = output.get("AssembleWith") == "Line" or join == "Input"
    records = split_records(data, source.get("SplitType", "None"))
    payload = int(job.max_payload_in_mb or DEFAULT_MAX_PAYLOAD_MB) * 1024 * 1024
    client = job.model_client_config or {}
    timeout = float(client.get("InvocationsTimeoutInSeconds") or DEFAULT_INVOCATION_TIMEOUT)
    results: list[bytes] = []
    for batch in mini_batches(records, job.batch_strategy or "MultiRecord", payload):
        answer = _invoke(url, b"\n".join(batch) + b"\n", content_type, accept, timeout)
        if not by_line:
            results.append(answer)
            continue
        lines = answer_lines(answer, len(batch), where)
        if join == "Input":
            lines = [record + b"," + line for record, line in zip(batch, lines, strict=True)]
        results.extend(lines)
    return results


def _run(job: Any, run: TransformRun, backend: Any, state: Any) -> None:
    processing = job.data_processing or {}
    for name in ("InputFilter", "OutputFilter"):
        if processing.get(name, ALL) != ALL:
            raise TransformError(
                f"ClientError: DataProcessing.{name} {processing[name]} is not emulated offline"
            )
    if processing.get("JoinSource", "None") not in ("None", "Input"):
        raise TransformError(f"ClientError: JoinSource {processing['JoinSource']} is not supported")
    source = (job.transform_input or {}).get("DataSource", {}).get("S3DataSource", {})
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise TransformError(f"ClientError: S3DataType {source['S3DataType']} is not emulated offline")
    content_type = (job.transform_input or {}).get("ContentType") or "application/octet-stream"
    accept = (job.transform_output or {}).get("Accept") or content_type
    s3 = job_contract.s3_backend(backend.account_id, backend.region_name)
    inputs = run.root / "input"
    if job_contract.download_input(s3, source["S3Uri"], inputs, "S3Prefix") == 0:
        raise TransformError(f"ClientError: no objects under {source['S3Uri']}")
    url = _start_server(run, backend, job, state)
    assemble = (job.transform_output or {}).get("AssembleWith") == "Line"
    out_bucket, out_prefix = job_contract.parse_s3_uri(job.transform_output["S3OutputPath"])
    for path in sorted(p for p in inputs.rglob("*") if p.is_file()):
        relative = path.relative_to(inputs).as_posix()
        records = _transform_object(
            url, path.read_bytes(), job, relative, content_type=content_type, accept=accept
        )
        body = b"".join(record + b"\n" for record in records) if assemble else b"".join(records)
        key = "/".join(filter(None, [out_prefix.rstrip("/"), f"{relative}.out"]))
        s3.put_object(out_bucket, key, body)


def _finish(job: Any, status: str, reason: str | None) -> None:
    now = job_process.now()
    job.transform_job_status = status
    job.failure_reason = reason or ""
    job.transform_end_time = job.last_modified_time = now


def _worker(job: Any, run: TransformRun, backend: Any, state: Any) -> None:
    try:
        forced = state.faults.take_job_outcome("transform")
        if forced is not None:
            _finish(job, forced.status, forced.reason)
            return
        with job_process.pool():
            if run.root.exists():
                shutil.rmtree(run.root)
            run.root.mkdir(parents=True)
            try:
                _run(job, run, backend, state)
            except (TransformError, job_contract.JobError) as error:
                _finish(job, "Failed", str(error))
            except Exception as error:  # noqa: BLE001 - any crash of the runner must still end the job
                _finish(job, "Failed", f"InternalServerError: offline transform runner: {error!r}")
            else:
                _finish(job, "Completed", None)
            finally:
                run.stop_server()
    finally:
        run.done.set()


def start(job: Any, state: Any, backend: Any) -> TransformRun:
    now = job_process.now()
    job.creation_time = job.transform_start_time = job.last_modified_time = now
    job.transform_end_time = None
    job.transform_job_status = "InProgress"
    job.failure_reason = ""
    run = TransformRun(
        name=job.transform_job_name, root=state.work_dir / "transform" / job.transform_job_name
    )
    with _runs_lock:
        _runs[run.name] = run
    threading.Thread(
        target=_worker, args=(job, run, backend, state), name=f"transform-{run.name}", daemon=True
    ).start()
    return run


def install(state: Any) -> None:
    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.responses import SageMakerResponse

    original = _patching.original(SageMakerResponse, "create_transform_job")

    def create_transform_job(self: Any) -> Any:
        name = self._get_param("TransformJobName")
        jobs = self.sagemaker_backend.transform_jobs
        if name in jobs:
            raise ResourceInUseException(
                "Transform job names must be unique within an AWS account and region, and a transform job "
                f"with this name already exists ({jobs[name].arn})"
            )
        result = original(self)
        start(jobs[name], state, self.sagemaker_backend)
        return result

    _patching.replace(SageMakerResponse, "create_transform_job", create_transform_job)


def uninstall() -> None:
    with _runs_lock:
        for run in _runs.values():
            run.stop_server()
        _runs.clear()
