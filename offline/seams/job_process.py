"""Running one offline SageMaker job: its worker thread and process, logs, timeout, and how its exit becomes
the job's status and FailureReason.

A job runs in `<work_dir>/jobs/<name>/` (laid out by job_contract) with this interpreter, or the image's
container virtualenv (container_runtime), in a subprocess of its own session:
- timeout StoppingCondition.MaxRuntimeInSeconds (exceeded: Stopped, SecondaryStatus MaxRuntimeExceeded);
- logs are kept in the job folder (`logs/stdout.log`, `logs/stderr.log`) and CloudWatch Logs
  (/aws/sagemaker/TrainingJobs, /aws/sagemaker/ProcessingJobs);
- on success outputs are uploaded (processing outputs; training: model.tar.gz, ModelArtifacts, metrics);
  checkpoints are synced to CheckpointConfig.S3Uri either way;
- a non-zero exit fails the job: processing with "AlgorithmError: See job logs for more information",
  training with the container's `train` wrapper text; Stop*Job kills the process and the job ends Stopped;
- at most `max_parallel_jobs` run at once (the pool transform jobs share).
The status, times and transitions are written on moto's FakeTrainingJob / FakeProcessingJob.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.seams import container_runtime
from offline.seams.job_contract import (
    HOST,
    PROCESSING_FAILURE,
    JobError,
    check_image,
    command,
    container_training_env,
    lay_out_training,
    metric_values,
    read_exit_message,
    rewrite,
    s3_backend,
    script_mode,
    stage_processing,
    train_command_failure,
    training_env,
    training_failure_reason,
    upload_dir,
    upload_processing_outputs,
    upload_training_outputs,
)


@dataclass
class JobRun:
    kind: str
    name: str
    root: Path
    account_id: str
    region: str
    done: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen[bytes] | None = None
    stop_requested: bool = False
    exit_message: str | None = None

    def stop(self) -> None:
        """Stop*Job: end the job's process; the worker then records Stopped."""
        self.stop_requested = True
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


_runs: dict[str, JobRun] = {}
_runs_lock = threading.Lock()
_slots: threading.Semaphore = threading.Semaphore(2)


def size_pool(max_parallel_jobs: int) -> None:
    """One job pool per process, sized by the installed state."""
    global _slots  # noqa: PLW0603 - replaced as a whole when the seams are installed
    _slots = threading.Semaphore(max(1, int(max_parallel_jobs)))


def pool() -> threading.Semaphore:
    """The slots jobs (and transform jobs) take while they run."""
    return _slots


def find_run(name: str) -> JobRun | None:
    return _runs.get(name)


def wait_for_job(name: str, timeout: float) -> None:
    """Block until the named job ends (or timeout); return at once for a job this seam does not run."""
    run = find_run(name)
    if run is not None:
        run.done.wait(timeout)


def kill_all() -> None:
    """Kill every job process still running and forget the runs."""
    with _runs_lock:
        for run in _runs.values():
            if run.process is not None and run.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.process.pid, signal.SIGKILL)
        _runs.clear()


class _Stopped(Exception):
    """The job exceeded MaxRuntimeInSeconds."""


def now() -> Any:
    """moto's clock, as its SageMaker models stamp times."""
    from moto.core.utils import utcnow

    return utcnow()


# ---------------------------------------------------------------- the process


def _to_cloudwatch(account_id: str, region: str, group: str, stream: str, log_files: list[Path]) -> None:
    from moto.logs.models import logs_backends

    backend = logs_backends[account_id][region]
    backend.ensure_log_group(group)
    backend.create_log_stream(group, stream)
    stamp = int(time.time() * 1000)
    lines = [
        line for path in log_files if path.is_file() for line in path.read_text(errors="replace").splitlines()
    ]
    for start in range(0, len(lines), 5000):
        chunk = [{"timestamp": stamp, "message": line or " "} for line in lines[start : start + 5000]]
        backend.put_log_events(group, stream, chunk)


def _safe_cloudwatch(run: JobRun, group: str, files: list[Path]) -> None:
    # Logs are a convenience there: the job folder keeps them anyway.
    with contextlib.suppress(Exception):
        _to_cloudwatch(run.account_id, run.region, group, f"{run.name}/{HOST}-{int(time.time())}", files)


def _execute(
    run: JobRun, cmd: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[int | None, Path, Path]:
    """Run cmd; (exit code or None on timeout, stdout log, stderr log)."""
    logs = run.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "stdout.log", logs / "stderr.log"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
        run.process = process
        if run.stop_requested:
            # Stop*Job arrived after the "Training" transition but before this spawn: stop() saw no process.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
    return code, out_path, err_path


def _base_env(state: Any, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update({k: str(v) for k, v in (extra or {}).items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _python(state: Any) -> str:
    return state.python or sys.executable


def _container(state: Any, image: str, run: JobRun) -> str | None:
    """The python of a fresh overlay on the image's container virtualenv, or None for the fast path."""
    venv = container_runtime.for_image(getattr(state, "container_venvs", {}) or {}, image)
    if venv is None:
        return None
    return str(container_runtime.overlay(venv, run.root / "venv"))


# ---------------------------------------------------------------- processing


def _run_processing(job: Any, run: JobRun, state: Any, environment: dict[str, str]) -> None:
    s3 = s3_backend(run.account_id, run.region)
    spec = job.app_specification or {}
    check_image(spec.get("ImageUri", ""))
    outputs = stage_processing(job, run.root, s3)
    entrypoint = spec.get("ContainerEntrypoint")
    if not entrypoint:
        raise JobError(
            "AppSpecification.ContainerEntrypoint is required offline (the image's default is not run)"
        )
    container_python = _container(state, spec.get("ImageUri", ""), run)
    python = container_python or _python(state)
    cmd = [
        rewrite(a, run.root)
        for a in command(list(entrypoint), python) + list(spec.get("ContainerArguments") or [])
    ]
    timeout = float(
        (job.stopping_condition or {}).get("MaxRuntimeInSeconds") or state.default_job_timeout_seconds
    )
    env = _base_env(state, environment)
    if container_python:
        env.update(container_runtime.pip_environment())
    code, out_log, err_log = _execute(run, cmd, run.root, env, timeout)
    _safe_cloudwatch(run, "/aws/sagemaker/ProcessingJobs", [out_log, err_log])
    run.exit_message = read_exit_message(run.root)
    if code is None:
        raise _Stopped(f"MaxRuntimeExceeded: the job ran longer than {timeout:g} seconds")
    if code != 0:
        raise JobError(PROCESSING_FAILURE)
    upload_processing_outputs(s3, outputs, run.root)


# ---------------------------------------------------------------- training


def transition(job: Any, status: str, message: str) -> None:
    """A training job's next SecondaryStatusTransitions entry (the previous one ends now)."""
    stamp = now()
    transitions = job.secondary_status_transitions or []
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = stamp
    transitions.append({"Status": status, "StartTime": stamp, "StatusMessage": message})
    job.secondary_status_transitions = transitions
    job.secondary_status = status
    job.last_modified_time = stamp


def _run_training(job: Any, run: JobRun, state: Any, environment: dict[str, str]) -> None:
    s3 = s3_backend(run.account_id, run.region)
    hps, program, submit = script_mode(job)
    algorithm = job.algorithm_specification
    root = run.root
    transition(job, "Downloading", "Downloading input data")
    channels, checkpoint, checkpoint_dir = lay_out_training(job, root, s3, program, submit)
    transition(job, "Training", "Training image download completed. Training in progress.")
    env = _base_env(state, environment)
    fast_env = training_env(job, root, hps, channels, program=program, submit=submit)
    user_args = json.loads(fast_env["SM_USER_ARGS"])
    stopping = job.stopping_condition or {}
    timeout = float(stopping.get("MaxRuntimeInSeconds") or state.default_job_timeout_seconds)
    container_python = _container(state, algorithm["TrainingImage"], run)
    if container_python:
        # The image's `train` command: the toolkits set up SM_* and run the script themselves.
        env.update(container_training_env(job, root, run.region))
        cmd, cwd = [container_python, "-c", container_runtime.TRAIN_COMMAND], root
    else:
        env.update(fast_env)
        cmd, cwd = [_python(state), program, *user_args], root / "code"
    code, out_log, err_log = _execute(run, cmd, cwd, env, timeout)
    _safe_cloudwatch(run, "/aws/sagemaker/TrainingJobs", [out_log, err_log])
    if checkpoint.get("S3Uri"):
        upload_dir(s3, checkpoint_dir, checkpoint["S3Uri"])
    latest = metric_values(algorithm.get("MetricDefinitions") or [], [out_log, err_log])
    stamp = now()
    job.final_metric_data_list = [
        {"MetricName": name, "Value": value, "Timestamp": stamp} for name, value in latest.items()
    ]
    if code is None:
        raise _Stopped(f"Training job runtime exceeded MaxRuntimeInSeconds provided ({timeout:g} s)")
    if code != 0:
        failure = root / "output" / "failure"
        if not container_python:  # the container's train command replaces whatever the script wrote there
            failure.write_text(train_command_failure(code, ["/usr/bin/python3", program, *user_args]))
        text = failure.read_text(errors="replace") if failure.is_file() else f"exit code {code}"
        raise JobError(training_failure_reason(text))
    transition(job, "Uploading", "Uploading generated training model")
    job.model_artifacts = {"S3ModelArtifacts": upload_training_outputs(job, root, s3)}


# ---------------------------------------------------------------- lifecycle


def _finish(
    job: Any,
    kind: str,
    status: str,
    reason: str | None,
    secondary: str | None = None,
    *,
    exit_message: str | None = None,
) -> None:
    stamp = now()
    if kind == "training":
        job.training_end_time = stamp
        start = job.training_start_time or stamp
        job.training_time_in_seconds = job.billable_time_in_seconds = max(
            1, int((stamp - start).total_seconds())
        )
        transition(job, secondary or status, reason or f"Training job {status.lower()}")
        job.secondary_status_transitions[-1]["EndTime"] = stamp
        job.training_job_status = status
    else:
        job.processing_end_time = stamp
        job.exit_message = exit_message
        job.processing_job_status = status
    job.failure_reason = reason if status != "Completed" else None
    job.last_modified_time = stamp


def _worker(job: Any, kind: str, run: JobRun, state: Any, environment: dict[str, str]) -> None:
    try:
        forced = state.faults.take_job_outcome(kind)
        if forced is not None:
            secondary = "MaxRuntimeExceeded" if forced.status == "Stopped" else "Failed"
            _finish(job, kind, forced.status, forced.reason, secondary)
            return
        with _slots:
            if run.stop_requested:
                _finish(job, kind, "Stopped", None, "Stopped")
                return
            if run.root.exists():
                shutil.rmtree(run.root)
            run.root.mkdir(parents=True)
            outcome: tuple[str, str | None, str | None]
            try:
                if kind == "training":
                    _run_training(job, run, state, environment)
                else:
                    _run_processing(job, run, state, environment)
            except _Stopped as stopped:
                outcome = ("Stopped", str(stopped), "MaxRuntimeExceeded")
            except JobError as error:
                outcome = ("Failed", str(error), None)
            except Exception as error:  # noqa: BLE001 - any crash of the runner must still end the job
                outcome = ("Failed", f"InternalServerError: offline job runner: {error!r}", None)
            else:
                outcome = ("Completed", None, "Completed")
            if run.stop_requested:
                # Decided before the status is written: a poller must never see the killed process's Failed.
                outcome = ("Stopped", None, "Stopped")
            _finish(job, kind, *outcome, exit_message=run.exit_message)
    finally:
        run.done.set()


def start(job: Any, kind: str, state: Any, environment: dict[str, str] | None, backend: Any) -> JobRun:
    """Mark the created job InProgress and run it on a worker thread."""
    name = job.training_job_name if kind == "training" else job.processing_job_name
    stamp = now()
    job.creation_time = job.last_modified_time = stamp
    job.failure_reason = None
    if kind == "training":
        job.training_job_status = "InProgress"
        job.training_start_time = stamp
        job.training_end_time = None
        job.model_artifacts = None
        job.final_metric_data_list = []
        job.secondary_status_transitions = []
        transition(job, "Starting", "Launching requested ML instances")
    else:
        job.processing_job_status = "InProgress"
        job.processing_start_time = stamp
        job.processing_end_time = None
    if environment:
        job.environment = environment
    run = JobRun(
        kind=kind,
        name=name,
        root=state.work_dir / "jobs" / name,
        account_id=backend.account_id,
        region=backend.region_name,
    )
    with _runs_lock:
        _runs[name] = run
    threading.Thread(
        target=_worker, args=(job, kind, run, state, environment or {}), name=f"job-{name}", daemon=True
    ).start()
    return run
