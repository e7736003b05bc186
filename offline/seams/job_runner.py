"""SageMaker processing and training jobs really run. Gap: moto 5.2.5 marks a job Completed at create
and runs nothing; duplicate job names silently overwrite the old job (AWS: ResourceInUse); StopTrainingJob is
not implemented and StopProcessingJob stops nothing.

On CreateTrainingJob / CreateProcessingJob (from any client or a Step Functions task) the job is InProgress
and a worker thread runs it under SageMaker's container contract, in `<work_dir>/jobs/<name>/` standing in for
/opt/ml:
- inputs (S3Prefix or a single object) are copied from the emulated S3 to their local paths; `/opt/ml/...` in
  the entrypoint, arguments and LocalPaths is rewritten to the job folder;
- training (script mode): `sagemaker_submit_directory` (tar.gz in S3) is unpacked to `code/`,
  `sagemaker_program` runs with the other hyperparameters as `--name value` and the toolkit's variables
  (SM_CHANNEL_<NAME>, SM_CHANNELS, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, SM_HPS, SM_HP_<NAME>, SM_CURRENT_HOST,
  SM_HOSTS, SM_NUM_CPUS, SM_TRAINING_ENV, ...); values JSON-encoded by the SageMaker SDK ("\"train.py\"") are
  accepted;
- the command runs with this interpreter in a subprocess, timeout StoppingCondition.MaxRuntimeInSeconds
  (exceeded: Stopped, SecondaryStatus MaxRuntimeExceeded);
- on success outputs are uploaded (processing outputs; training: model dir -> `<S3OutputPath>/<job>/output/
  model.tar.gz`, ModelArtifacts set, `MetricDefinitions` regexes applied to the log -> FinalMetricDataList);
  checkpoints are synced to CheckpointConfig.S3Uri either way;
- processing: ExitMessage is the first KB of `<root>/output/message` whatever the outcome (AWS reads that
  file, never stderr); a non-zero exit fails the job with FailureReason "AlgorithmError: See job logs for more
  information";
- training: the scikit-learn container's `train` command (sagemaker-containers' trainer around
  sagemaker-training's script runner) runs the script without capturing stderr and, on a non-zero exit,
  rewrites `<root>/output/failure` with its own traceback ending `ExecuteUserScriptError: ExitCode <n>
  ErrorMessage ""`: FailureReason is "AlgorithmError: " + that text, cut at 1024 characters, so the script's
  own message is only in the log;
- logs are kept in the job folder (`logs/stdout.log`, `logs/stderr.log`) and CloudWatch Logs
  (/aws/sagemaker/TrainingJobs, /aws/sagemaker/ProcessingJobs);
- an image whose repository is not sagemaker-scikit-learn or sagemaker-xgboost fails with "no offline runner
  for image <uri>".

moto internals touched: `moto.sagemaker.responses.SageMakerResponse.create_training_job` /
`.create_processing_job` (wrapped: duplicate check, Environment, run); `.stop_processing_job` (replaced) and
`.stop_training_job` (added): Stopping, the job's process is killed, then Stopped; `FakeTrainingJob` /
`FakeProcessingJob` attributes (status, times, artifacts: read by their `response_object`); the S3 and
CloudWatch Logs backends.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.seams import _patching, container_runtime

OFFLINE_IMAGE_REPOSITORIES = {"sagemaker-scikit-learn", "sagemaker-xgboost"}
HOST = "algo-1"
_OPT_ML = "/opt/ml"


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


class JobError(Exception):
    """The job cannot run offline or its code failed; the message becomes FailureReason."""


def wait_for_job(name: str, timeout: float) -> None:
    """Block until the named job ends (or timeout); return at once for a job this seam does not run."""
    run = _runs.get(name)
    if run is not None:
        run.done.wait(timeout)


def image_repository(uri: str) -> str:
    """<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> -> <repository>."""
    path = uri.split("/", 1)[1] if "/" in uri else uri
    return path.split("@")[0].rsplit(":", 1)[0] if ":" in path.split("/")[-1] else path.split("@")[0]


def check_image(uri: str) -> None:
    if not uri or image_repository(uri).split("/")[-1] not in OFFLINE_IMAGE_REPOSITORIES:
        raise JobError(f"no offline runner for image {uri}")


# ---------------------------------------------------------------- S3 (moto's backend: works in both modes)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise JobError(f"{uri} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _s3(account_id: str, region: str) -> Any:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    return s3_backends[account_id][get_partition(region)]


def download_input(s3: Any, uri: str, dest: Path, data_type: str | None) -> int:
    """A job input: like AWS, a ManifestFile is not supported here and an empty prefix fails the job."""
    if data_type not in (None, "S3Prefix"):
        raise JobError(
            f"ClientError: S3DataType {data_type} of {uri} is not supported offline (use S3Prefix)"
        )
    count = download(s3, uri, dest)
    if count == 0:
        raise JobError(
            f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. '
            "Please ensure that the bucket exists in the selected region, that objects exist under that "
            "S3 prefix."
        )
    return count


def download(s3: Any, uri: str, dest: Path) -> int:
    """Copy the object at uri, or every object under the prefix, into dest (prefix stripped); the count."""
    from moto.s3.models import FakeKey

    bucket_name, prefix = parse_s3_uri(uri)
    try:
        bucket = s3.get_bucket(bucket_name)
    except Exception as error:
        raise JobError(f"input {uri}: bucket {bucket_name} does not exist") from error
    count = 0
    for key_name, key in bucket.keys.items():
        if not isinstance(key, FakeKey) or not key_name.startswith(prefix) or key_name.endswith("/"):
            continue
        relative = key_name[len(prefix) :].lstrip("/") or key_name.rsplit("/", 1)[-1]
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(key.value)
        count += 1
    return count


def upload_dir(s3: Any, local: Path, uri: str) -> int:
    bucket, prefix = parse_s3_uri(uri)
    count = 0
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = "/".join(filter(None, [prefix.rstrip("/"), path.relative_to(local).as_posix()]))
        s3.put_object(bucket, key, path.read_bytes())
        count += 1
    return count


def tar_dir(local: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(local.rglob("*")):
            archive.add(path, arcname=path.relative_to(local).as_posix(), recursive=False)
    return target


def extract_tar(data_path: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(data_path) as archive:
        archive.extractall(dest, filter="data")


# ---------------------------------------------------------------- helpers


def map_path(path: str, root: Path) -> Path:
    if path == _OPT_ML or path.startswith(_OPT_ML + "/"):
        return root / path[len(_OPT_ML) :].lstrip("/")
    return Path(path)


def rewrite(arg: str, root: Path) -> str:
    return re.sub(r"/opt/ml(?=/|$)", str(root), arg)


def decode_hyperparameter(value: Any) -> Any:
    """SageMaker SDK values are JSON-encoded strings ("\\"train.py\\"", "100"); plain strings pass through."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _as_arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# DescribeProcessingJob.ExitMessage and Describe*Job.FailureReason hold at most 1 KB / 1024 characters.
REASON_LIMIT = 1024
PROCESSING_FAILURE = "AlgorithmError: See job logs for more information"


def _exit_message(root: Path) -> str | None:
    """The first KB of <root>/output/message (None when absent); AWS fails a job whose file is not UTF-8."""
    path = root / "output" / "message"
    if not path.is_file():
        return None
    head = path.read_bytes()[:REASON_LIMIT]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3:  # the cut fell inside a multi-byte character
            return head[: error.start].decode("utf-8")
        raise JobError(f"ClientError: /opt/ml/output/message is not UTF-8 encoded ({error})") from error


def train_command_failure(exit_code: int, command: list[str]) -> str:
    """What the container's `train` command writes to output/failure when the script exits non-zero
    (sagemaker_containers._trainer.train around sagemaker_training.process.check_error, capture_error=False:
    the script's stderr is not captured, so ErrorMessage is empty). The traceback frames are the toolkit's."""
    error = f'ExecuteUserScriptError:\nExitCode {exit_code}\nErrorMessage ""\nCommand "{" ".join(command)}"'
    return (
        "framework error: \nTraceback (most recent call last):\n"
        "  (frames of sagemaker_containers._trainer, sagemaker_sklearn_container.training and "
        "sagemaker_training.process: not reproduced offline)\n"
        f"sagemaker_training.errors.ExecuteUserScriptError: {error}\n{error}"
    )


def training_failure_reason(failure_text: str) -> str:
    return f"AlgorithmError: {failure_text}"[:REASON_LIMIT]


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()


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


def _command(entrypoint: list[str], python: str) -> list[str]:
    first = Path(entrypoint[0]).name if entrypoint else ""
    if re.fullmatch(r"python(3(\.\d+)?)?", first):
        return [python, *entrypoint[1:]]
    return entrypoint


def _container(state: Any, image: str, run: JobRun) -> str | None:
    """The python of a fresh overlay on the image's container virtualenv, or None for the fast path."""
    venv = container_runtime.for_image(getattr(state, "container_venvs", {}) or {}, image)
    if venv is None:
        return None
    return str(container_runtime.overlay(venv, run.root / "venv"))


# ---------------------------------------------------------------- processing


def _run_processing(job: Any, run: JobRun, state: Any, environment: dict[str, str]) -> None:
    s3 = _s3(run.account_id, run.region)
    spec = job.app_specification or {}
    check_image(spec.get("ImageUri", ""))
    for item in job.processing_inputs or []:
        s3_input = item.get("S3Input")
        if not s3_input:
            raise JobError(f"ProcessingInput {item.get('InputName')}: only S3Input runs offline")
        download_input(
            s3, s3_input["S3Uri"], map_path(s3_input["LocalPath"], run.root), s3_input.get("S3DataType")
        )
    outputs = (job.processing_output_config or {}).get("Outputs", [])
    for item in outputs:
        map_path(item["S3Output"]["LocalPath"], run.root).mkdir(parents=True, exist_ok=True)
    entrypoint = spec.get("ContainerEntrypoint")
    if not entrypoint:
        raise JobError(
            "AppSpecification.ContainerEntrypoint is required offline (the image's default is not run)"
        )
    container_python = _container(state, spec.get("ImageUri", ""), run)
    python = container_python or _python(state)
    cmd = [
        rewrite(a, run.root)
        for a in _command(list(entrypoint), python) + list(spec.get("ContainerArguments") or [])
    ]
    timeout = float(
        (job.stopping_condition or {}).get("MaxRuntimeInSeconds") or state.default_job_timeout_seconds
    )
    env = _base_env(state, environment)
    if container_python:
        env.update(container_runtime.pip_environment())
    code, out_log, err_log = _execute(run, cmd, run.root, env, timeout)
    _safe_cloudwatch(run, "/aws/sagemaker/ProcessingJobs", [out_log, err_log])
    run.exit_message = _exit_message(run.root)
    if code is None:
        raise _Stopped(f"MaxRuntimeExceeded: the job ran longer than {timeout:g} seconds")
    if code != 0:
        raise JobError(PROCESSING_FAILURE)
    for item in outputs:
        out = item["S3Output"]
        upload_dir(s3, map_path(out["LocalPath"], run.root), out["S3Uri"])


class _Stopped(Exception):
    """The job exceeded MaxRuntimeInSeconds."""


def _safe_cloudwatch(run: JobRun, group: str, files: list[Path]) -> None:
    # Logs are a convenience there: the job folder keeps them anyway.
    with contextlib.suppress(Exception):
        _to_cloudwatch(run.account_id, run.region, group, f"{run.name}/{HOST}-{int(time.time())}", files)


# ---------------------------------------------------------------- training


def _training_env(
    job: Any, run: JobRun, hps: dict[str, Any], channels: list[str], *, program: str, submit: str
) -> dict[str, str]:
    root = run.root
    user_hps = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
    user_args = [x for k, v in user_hps.items() for x in (f"--{k}", _as_arg(v))]
    cpus = os.cpu_count() or 1
    env = {
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(root / "output" / "intermediate"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(user_hps),
        "SM_USER_ARGS": json.dumps(user_args),
        "SM_CURRENT_HOST": HOST,
        "SM_HOSTS": json.dumps([HOST]),
        "SM_NUM_CPUS": str(cpus),
        "SM_NUM_GPUS": "0",
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_MODULE_NAME": Path(program).stem,
        "SM_MODULE_DIR": submit,
        "SM_USER_ENTRY_POINT": program,
        "SM_LOG_LEVEL": "20",
        "SM_RESOURCE_CONFIG": json.dumps({"current_host": HOST, "hosts": [HOST]}),
        "SM_INPUT_DATA_CONFIG": json.dumps({c: {} for c in channels}),
        "TRAINING_JOB_NAME": job.training_job_name,
        "TRAINING_JOB_ARN": job.arn,
    }
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = str(root / "input" / "data" / channel)
    for key, value in user_hps.items():
        env[f"SM_HP_{key.upper()}"] = _as_arg(value)
    env["SM_TRAINING_ENV"] = json.dumps(
        {
            "job_name": job.training_job_name,
            "hyperparameters": user_hps,
            "channel_input_dirs": {c: env[f"SM_CHANNEL_{c.upper()}"] for c in channels},
            "model_dir": env["SM_MODEL_DIR"],
            "output_data_dir": env["SM_OUTPUT_DATA_DIR"],
            "current_host": HOST,
            "hosts": [HOST],
            "num_cpus": cpus,
            "num_gpus": 0,
            "module_name": env["SM_MODULE_NAME"],
            "user_entry_point": program,
        }
    )
    return env


def _container_training_env(job: Any, run: JobRun) -> dict[str, str]:
    """What the container's `train` command needs besides the files under /opt/ml (the job folder)."""
    return {
        "SAGEMAKER_BASE_DIR": str(run.root),
        "SAGEMAKER_TRAINING_MODULE": container_runtime.TRAINING_MODULE,
        "PYTHONPATH": str(container_runtime.GLUE_DIR),
        # No cluster to wait for: one host, this machine (the toolkit's own switch for local runs).
        "SM_STUDIO_LOCAL_MODE": "true",
        "TRAINING_JOB_NAME": job.training_job_name,
        "TRAINING_JOB_ARN": job.arn,
        "AWS_REGION": run.region,
        **container_runtime.pip_environment(),
    }


def _transition(job: Any, status: str, message: str) -> None:
    now = _now()
    transitions = job.secondary_status_transitions or []
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = now
    transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
    job.secondary_status_transitions = transitions
    job.secondary_status = status
    job.last_modified_time = now


def _prepare_training(
    job: Any, run: JobRun, s3: Any, program: str, submit: str
) -> tuple[list[str], dict, Path]:
    """Lay out /opt/ml under the job folder: channels, input/config, checkpoints and the unpacked code."""
    root = run.root
    for sub in ("model", "output/data", "output/intermediate", "input/config", "code"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _transition(job, "Downloading", "Downloading input data")
    channels = []
    for channel in job.input_data_config or []:
        source = channel.get("DataSource", {}).get("S3DataSource")
        if not source:
            raise JobError(f"channel {channel.get('ChannelName')}: only S3DataSource runs offline")
        channel_dir = root / "input" / "data" / channel["ChannelName"]
        download_input(s3, source["S3Uri"], channel_dir, source.get("S3DataType"))
        channels.append(channel["ChannelName"])
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
    (root / "input" / "config" / "inputdataconfig.json").write_text(
        json.dumps(
            {
                c["ChannelName"]: {k: v for k, v in c.items() if k != "DataSource"}
                for c in job.input_data_config or []
            }
        )
    )
    (root / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": HOST, "hosts": [HOST]})
    )
    checkpoint = job.checkpoint_config or {}
    checkpoint_dir = map_path(checkpoint.get("LocalPath") or "/opt/ml/checkpoints", root)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint.get("S3Uri"):
        download(s3, checkpoint["S3Uri"], checkpoint_dir)
    code_tar = root / "sourcedir.tar.gz"
    bucket, key = parse_s3_uri(submit)
    try:
        code_tar.write_bytes(s3.get_object(bucket, key).value)
    except Exception as error:
        raise JobError(f"sagemaker_submit_directory {submit} cannot be read: {error}") from error
    extract_tar(code_tar, root / "code")
    if not (root / "code" / program).is_file():
        raise JobError(f"sagemaker_program {program} is not in {submit}")
    return channels, checkpoint, checkpoint_dir


def _run_training(job: Any, run: JobRun, state: Any, environment: dict[str, str]) -> None:
    s3 = _s3(run.account_id, run.region)
    algorithm = job.algorithm_specification or {}
    if not algorithm.get("TrainingImage"):
        raise JobError(
            "AlgorithmSpecification.TrainingImage is required offline (AlgorithmName is not supported)"
        )
    check_image(algorithm["TrainingImage"])
    hps = {k: decode_hyperparameter(v) for k, v in (job.hyper_parameters or {}).items()}
    program, submit = hps.get("sagemaker_program"), hps.get("sagemaker_submit_directory")
    if not program or not submit:
        raise JobError(
            "offline training runs script mode only: set hyperparameters sagemaker_program and "
            "sagemaker_submit_directory (an s3:// sourcedir.tar.gz)"
        )
    channels, checkpoint, checkpoint_dir = _prepare_training(job, run, s3, program, submit)
    root = run.root
    _transition(job, "Training", "Training image download completed. Training in progress.")
    env = _base_env(state, environment)
    fast_env = _training_env(job, run, hps, channels, program=program, submit=submit)
    user_args = json.loads(fast_env["SM_USER_ARGS"])
    stopping = job.stopping_condition or {}
    timeout = float(stopping.get("MaxRuntimeInSeconds") or state.default_job_timeout_seconds)
    container_python = _container(state, algorithm["TrainingImage"], run)
    if container_python:
        # The image's `train` command: the toolkits set up SM_* and run the script themselves.
        env.update(_container_training_env(job, run))
        command, cwd = [container_python, "-c", container_runtime.TRAIN_COMMAND], root
    else:
        env.update(fast_env)
        command, cwd = [_python(state), program, *user_args], root / "code"
    code, out_log, err_log = _execute(run, command, cwd, env, timeout)
    _safe_cloudwatch(run, "/aws/sagemaker/TrainingJobs", [out_log, err_log])
    if checkpoint.get("S3Uri"):
        upload_dir(s3, checkpoint_dir, checkpoint["S3Uri"])
    job.final_metric_data_list = _metrics(algorithm.get("MetricDefinitions") or [], [out_log, err_log])
    if code is None:
        raise _Stopped(f"Training job runtime exceeded MaxRuntimeInSeconds provided ({timeout:g} s)")
    if code != 0:
        failure = root / "output" / "failure"
        if not container_python:  # the container's train command replaces whatever the script wrote there
            failure.write_text(train_command_failure(code, ["/usr/bin/python3", program, *user_args]))
        text = failure.read_text(errors="replace") if failure.is_file() else f"exit code {code}"
        raise JobError(training_failure_reason(text))
    _transition(job, "Uploading", "Uploading generated training model")
    output = job.output_data_config["S3OutputPath"].rstrip("/")
    bucket, prefix = parse_s3_uri(f"{output}/{job.training_job_name}/output/model.tar.gz")
    s3.put_object(bucket, prefix, tar_dir(root / "model", root / "model.tar.gz").read_bytes())
    if any((root / "output" / "data").iterdir()):
        data_bucket, data_key = parse_s3_uri(f"{output}/{job.training_job_name}/output/output.tar.gz")
        s3.put_object(
            data_bucket, data_key, tar_dir(root / "output" / "data", root / "output.tar.gz").read_bytes()
        )
    job.model_artifacts = {"S3ModelArtifacts": f"{output}/{job.training_job_name}/output/model.tar.gz"}


def _metrics(definitions: list[dict[str, str]], files: list[Path]) -> list[dict[str, Any]]:
    latest: dict[str, float] = {}
    patterns = [(d["Name"], re.compile(d["Regex"])) for d in definitions if d.get("Name") and d.get("Regex")]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            for name, pattern in patterns:
                match = pattern.search(line)
                if match:
                    try:
                        latest[name] = float(match.group(1) if match.groups() else match.group(0))
                    except ValueError:
                        continue
    now = _now()
    return [{"MetricName": name, "Value": value, "Timestamp": now} for name, value in latest.items()]


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
    now = _now()
    if kind == "training":
        job.training_end_time = now
        start = job.training_start_time or now
        job.training_time_in_seconds = job.billable_time_in_seconds = max(
            1, int((now - start).total_seconds())
        )
        _transition(job, secondary or status, reason or f"Training job {status.lower()}")
        job.secondary_status_transitions[-1]["EndTime"] = now
        job.training_job_status = status
    else:
        job.processing_end_time = now
        job.exit_message = exit_message
        job.processing_job_status = status
    job.failure_reason = reason if status != "Completed" else None
    job.last_modified_time = now


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
    name = job.training_job_name if kind == "training" else job.processing_job_name
    now = _now()
    job.creation_time = job.last_modified_time = now
    job.failure_reason = None
    if kind == "training":
        job.training_job_status = "InProgress"
        job.training_start_time = now
        job.training_end_time = None
        job.model_artifacts = None
        job.final_metric_data_list = []
        job.secondary_status_transitions = []
        _transition(job, "Starting", "Launching requested ML instances")
    else:
        job.processing_job_status = "InProgress"
        job.processing_start_time = now
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


def install(state: Any) -> None:
    global _slots  # noqa: PLW0603 - one job pool per process, sized by the installed state
    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.responses import SageMakerResponse

    _slots = threading.Semaphore(max(1, int(state.max_parallel_jobs)))

    for kind, method, name_param, table in (
        ("training", "create_training_job", "TrainingJobName", "training_jobs"),
        ("processing", "create_processing_job", "ProcessingJobName", "processing_jobs"),
    ):
        original = _patching.original(SageMakerResponse, method)

        def create(
            self: Any,
            _original: Any = original,
            _kind: str = kind,
            _param: str = name_param,
            _table: str = table,
        ) -> Any:
            name = self._get_param(_param)
            jobs = getattr(self.sagemaker_backend, _table)
            if name in jobs:
                label = "Training" if _kind == "training" else "Processing"
                raise ResourceInUseException(
                    f"{label} job names must be unique within an AWS account and region, and a "
                    f"{label.lower()} job with this name already exists ({jobs[name].arn})",
                )
            algorithm = copy.deepcopy(self._get_param("AlgorithmSpecification"))
            result = _original(self)
            job = jobs[name]
            if _kind == "training":
                # moto replaces MetricDefinitions with a canned one; keep the caller's.
                job.algorithm_specification = algorithm or {}
            start(job, _kind, state, self._get_param("Environment"), self.sagemaker_backend)
            return result

        _patching.replace(SageMakerResponse, method, create)

    def stop_job(self: Any, kind: str, name_param: str, table: str) -> Any:
        from moto.core.responses import EmptyResult
        from moto.sagemaker.exceptions import ValidationError

        name = self._get_param(name_param)
        job = getattr(self.sagemaker_backend, table).get(name)
        label = "training" if kind == "training" else "processing"
        if job is None:
            raise ValidationError(message=f"Could not find {label} job '{name}'.")
        status = job.training_job_status if kind == "training" else job.processing_job_status
        if status != "InProgress":
            raise ValidationError(
                message=f"The {label} job {name} is in status {status}: only InProgress stops."
            )
        if kind == "training":
            job.training_job_status = "Stopping"
            _transition(job, "Stopping", "Stopping the training job")
        else:
            job.processing_job_status = "Stopping"
        run = _runs.get(name)
        if run is not None:
            run.stop()
        return EmptyResult()

    def stop_training_job(self: Any) -> Any:
        return stop_job(self, "training", "TrainingJobName", "training_jobs")

    def stop_processing_job(self: Any) -> Any:
        return stop_job(self, "processing", "ProcessingJobName", "processing_jobs")

    _patching.replace(SageMakerResponse, "stop_training_job", stop_training_job, must_exist=False)
    _patching.replace(SageMakerResponse, "stop_processing_job", stop_processing_job)


def uninstall() -> None:
    with _runs_lock:
        for run in _runs.values():
            if run.process is not None and run.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.process.pid, signal.SIGKILL)
        _runs.clear()
