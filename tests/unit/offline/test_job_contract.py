"""The container contract on its own: how a job request maps onto the job folder, and what AWS reads back."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from offline.seams import job_contract
from offline.seams.job_contract import JobError

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def test_only_the_scikit_learn_and_xgboost_images_run_offline() -> None:
    assert job_contract.image_repository(IMAGE) == "sagemaker-scikit-learn"
    assert (
        job_contract.image_repository("123.dkr.ecr.eu-west-1.amazonaws.com/team/xgb@sha256:ab") == "team/xgb"
    )
    job_contract.check_image(IMAGE)
    with pytest.raises(JobError, match=r"no offline runner for image 1\.dkr\.ecr\.x/other:1"):
        job_contract.check_image("1.dkr.ecr.x/other:1")


def test_opt_ml_is_the_job_folder_and_python_is_this_interpreter(tmp_path: Path) -> None:
    assert job_contract.map_path("/opt/ml/processing/input", tmp_path) == tmp_path / "processing/input"
    assert job_contract.map_path("/data/x", tmp_path) == Path("/data/x")
    assert job_contract.rewrite("--out=/opt/ml/output", tmp_path) == f"--out={tmp_path}/output"
    assert job_contract.rewrite("/opt/mlx", tmp_path) == "/opt/mlx"
    assert job_contract.command(["python3", "a.py"], "/py") == ["/py", "a.py"]
    assert job_contract.command(["/usr/bin/python3.11", "a.py"], "/py") == ["/py", "a.py"]
    assert job_contract.command(["bash", "run.sh"], "/py") == ["bash", "run.sh"]


def test_sdk_encoded_hyperparameters_are_decoded_and_plain_strings_kept() -> None:
    assert job_contract.decode_hyperparameter('"train.py"') == "train.py"
    assert job_contract.decode_hyperparameter("100") == 100
    assert job_contract.decode_hyperparameter("train.py") == "train.py"


def test_training_env_is_the_toolkits_variables(tmp_path: Path) -> None:
    job = SimpleNamespace(training_job_name="job-1", arn="arn:aws:sagemaker:us-east-1:1:training-job/job-1")
    hps = {"sagemaker_program": "train.py", "n-estimators": 10, "max_depth": "3"}
    env = job_contract.training_env(
        job, tmp_path, hps, ["train", "validation"], program="train.py", submit="s3://b/c"
    )
    assert env["SM_CHANNEL_TRAIN"] == str(tmp_path / "input/data/train")
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert json.loads(env["SM_HPS"]) == {"n-estimators": 10, "max_depth": "3"}
    assert json.loads(env["SM_USER_ARGS"]) == ["--n-estimators", "10", "--max_depth", "3"]
    assert env["SM_HP_N-ESTIMATORS"] == "10"
    assert env["SM_MODULE_NAME"] == "train"
    assert (
        json.loads(env["SM_TRAINING_ENV"])["channel_input_dirs"]["validation"] == env["SM_CHANNEL_VALIDATION"]
    )


def test_exit_message_is_the_first_kilobyte_of_the_message_file(tmp_path: Path) -> None:
    assert job_contract.read_exit_message(tmp_path) is None
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "message").write_bytes(("é" * 600).encode())  # 1200 bytes, cut inside a character
    assert job_contract.read_exit_message(tmp_path) == "é" * 512
    (tmp_path / "output" / "message").write_bytes(b"\xff\xfe bad")
    with pytest.raises(JobError, match="not UTF-8 encoded"):
        job_contract.read_exit_message(tmp_path)


def test_training_failure_reason_is_the_train_commands_text_cut_at_1024() -> None:
    text = job_contract.train_command_failure(2, ["/usr/bin/python3", "train.py"])
    assert text.endswith(
        'ExecuteUserScriptError:\nExitCode 2\nErrorMessage ""\nCommand "/usr/bin/python3 train.py"'
    )
    reason = job_contract.training_failure_reason(text + "x" * 2000)
    assert reason.startswith("AlgorithmError: framework error:") and len(reason) == job_contract.REASON_LIMIT


def test_metric_values_keep_the_last_match_per_definition(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_text("validation:accuracy=0.5\nnoise\nvalidation:accuracy=0.75\nloss=abc\n")
    definitions = [
        {"Name": "validation:accuracy", "Regex": r"validation:accuracy=([0-9.]+)"},
        {"Name": "loss", "Regex": r"loss=(\S+)"},
    ]
    assert job_contract.metric_values(definitions, [log, tmp_path / "missing.log"]) == {
        "validation:accuracy": 0.75
    }
