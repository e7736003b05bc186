"""SageMaker's container contract for offline jobs: how a job request maps onto the job folder standing in for
/opt/ml, and what AWS reads back from it.

- inputs (S3Prefix or a single object) are copied from the emulated S3 to their local paths; `/opt/ml/...` in
  the entrypoint, arguments and LocalPaths is rewritten to the job folder;
- training (script mode): channels under `input/data/<channel>`, `input/config/*.json`, checkpoints synced
  from CheckpointConfig.S3Uri, `sagemaker_submit_directory` (tar.gz in S3) unpacked to `code/`;
  `sagemaker_program` runs with the other hyperparameters as `--name value` and the toolkit's variables
  (SM_CHANNEL_<NAME>, SM_CHANNELS, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, SM_HPS, SM_HP_<NAME>, SM_CURRENT_HOST,
  SM_HOSTS, SM_NUM_CPUS, SM_TRAINING_ENV, ...); values JSON-encoded by the SageMaker SDK ("\\"train.py\\"")
  are accepted;
- what AWS reads back: processing ExitMessage is the first KB of `<root>/output/message` (never stderr);
  training FailureReason is "AlgorithmError: " + the scikit-learn container's `train` wrapper text, cut at
  1024 characters; `MetricDefinitions` regexes applied to the log give FinalMetricDataList;
- an image whose repository is not sagemaker-scikit-learn or sagemaker-xgboost has no offline runner.

The S3 helpers here read and write moto's backend directly, so they work in-process and in server mode alike.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

from offline.seams import container_runtime

OFFLINE_IMAGE_REPOSITORIES = {"sagemaker-scikit-learn", "sagemaker-xgboost"}
HOST = "algo-1"
_OPT_ML = "/opt/ml"

# DescribeProcessingJob.ExitMessage and Describe*Job.FailureReason hold at most 1 KB / 1024 characters.
REASON_LIMIT = 1024
PROCESSING_FAILURE = "AlgorithmError: See job logs for more information"


class JobError(Exception):
    """The job cannot run offline or its code failed; the message becomes FailureReason."""


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


def s3_backend(account_id: str, region: str) -> Any:
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


# ---------------------------------------------------------------- paths, commands, hyperparameters


def map_path(path: str, root: Path) -> Path:
    if path == _OPT_ML or path.startswith(_OPT_ML + "/"):
        return root / path[len(_OPT_ML) :].lstrip("/")
    return Path(path)


def rewrite(arg: str, root: Path) -> str:
    return re.sub(r"/opt/ml(?=/|$)", str(root), arg)


def command(entrypoint: list[str], python: str) -> list[str]:
    """The entrypoint with its `python`/`python3` replaced by the interpreter that runs jobs offline."""
    first = Path(entrypoint[0]).name if entrypoint else ""
    if re.fullmatch(r"python(3(\.\d+)?)?", first):
        return [python, *entrypoint[1:]]
    return entrypoint


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


# ---------------------------------------------------------------- processing


def stage_processing(job: Any, root: Path, s3: Any) -> list[dict[str, Any]]:
    """Copy the ProcessingInputs to their local paths and create the outputs' folders; the outputs."""
    for item in job.processing_inputs or []:
        s3_input = item.get("S3Input")
        if not s3_input:
            raise JobError(f"ProcessingInput {item.get('InputName')}: only S3Input runs offline")
        download_input(
            s3, s3_input["S3Uri"], map_path(s3_input["LocalPath"], root), s3_input.get("S3DataType")
        )
    outputs: list[dict[str, Any]] = (job.processing_output_config or {}).get("Outputs", [])
    for item in outputs:
        map_path(item["S3Output"]["LocalPath"], root).mkdir(parents=True, exist_ok=True)
    return outputs


def upload_processing_outputs(s3: Any, outputs: list[dict[str, Any]], root: Path) -> None:
    for item in outputs:
        out = item["S3Output"]
        upload_dir(s3, map_path(out["LocalPath"], root), out["S3Uri"])


def read_exit_message(root: Path) -> str | None:
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


# ---------------------------------------------------------------- training


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


def script_mode(job: Any) -> tuple[dict[str, Any], str, str]:
    """A script-mode job's (decoded hyperparameters, sagemaker_program, sagemaker_submit_directory)."""
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
    return hps, program, submit


def lay_out_training(
    job: Any, root: Path, s3: Any, program: str, submit: str
) -> tuple[list[str], dict, Path]:
    """Lay out /opt/ml under the job folder: channels, input/config, checkpoints and the unpacked code;
    (channel names, CheckpointConfig, local checkpoint folder)."""
    for sub in ("model", "output/data", "output/intermediate", "input/config", "code"):
        (root / sub).mkdir(parents=True, exist_ok=True)
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


def training_env(
    job: Any, root: Path, hps: dict[str, Any], channels: list[str], *, program: str, submit: str
) -> dict[str, str]:
    """The variables the training toolkit gives a script-mode script (fast path: no container toolkit)."""
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


def container_training_env(job: Any, root: Path, region: str) -> dict[str, str]:
    """What the container's `train` command needs besides the files under /opt/ml (the job folder)."""
    return {
        "SAGEMAKER_BASE_DIR": str(root),
        "SAGEMAKER_TRAINING_MODULE": container_runtime.TRAINING_MODULE,
        "PYTHONPATH": str(container_runtime.GLUE_DIR),
        # No cluster to wait for: one host, this machine (the toolkit's own switch for local runs).
        "SM_STUDIO_LOCAL_MODE": "true",
        "TRAINING_JOB_NAME": job.training_job_name,
        "TRAINING_JOB_ARN": job.arn,
        "AWS_REGION": region,
        **container_runtime.pip_environment(),
    }


def upload_training_outputs(job: Any, root: Path, s3: Any) -> str:
    """The model folder as model.tar.gz and, when the script wrote any, output/data as output.tar.gz; the
    model's URI (ModelArtifacts.S3ModelArtifacts)."""
    output = job.output_data_config["S3OutputPath"].rstrip("/")
    model_uri = f"{output}/{job.training_job_name}/output/model.tar.gz"
    bucket, prefix = parse_s3_uri(model_uri)
    s3.put_object(bucket, prefix, tar_dir(root / "model", root / "model.tar.gz").read_bytes())
    if any((root / "output" / "data").iterdir()):
        data_bucket, data_key = parse_s3_uri(f"{output}/{job.training_job_name}/output/output.tar.gz")
        s3.put_object(
            data_bucket, data_key, tar_dir(root / "output" / "data", root / "output.tar.gz").read_bytes()
        )
    return model_uri


def metric_values(definitions: list[dict[str, str]], files: list[Path]) -> dict[str, float]:
    """The last value each MetricDefinitions regex finds in the job's logs, by metric name."""
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
    return latest
