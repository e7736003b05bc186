"""The deployed stack with jobs and the endpoint under the scikit-learn container's own Python, pins and
toolkits (`make container-venv`): sagemaker-containers' `train` command, sagemaker-training's script runner
and sagemaker-containers' serving stack, as in `sagemaker-scikit-learn:1.4-2-py312-cpu-py3`.

Three datasets run at once: one that deploys, one refused by processing, one refused by training. They run
only with CONTAINER_VENV_REQUIRED set (`make test-container`); without the container virtualenv they fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from offline.embedded import EmbeddedAws
from offline.seams import container_runtime
from tests.e2e.conftest import receive_notifications, subscribe_queue
from tests.e2e.test_pipeline import (
    SETOSA,
    VIRGINICA,
    endpoint_name,
    failure_details,
    iris_config,
    runs_of,
    upload,
)

DATASETS = {
    "ctr-iris": {},
    "ctr-badproc": {"target_column": "flower_kind"},
    "ctr-badtrain": {"n_estimators": 0},
}


@pytest.fixture(scope="module")
def container_runs(aws: EmbeddedAws) -> Iterator[dict[str, Any]]:
    if not os.environ.get("CONTAINER_VENV_REQUIRED"):
        pytest.skip(
            "runs in `make test-container` (CONTAINER_VENV_REQUIRED=1): minutes of pip installs per run"
        )
    if not container_runtime.built():
        pytest.fail("no .venv-container: run `make container-venv`")
    venv = container_runtime.load(container_runtime.DEFAULT_ROOT)
    queue = subscribe_queue(aws, aws.outputs["NotificationTopicArn"], "e2e-container-notifications")
    saved = dict(aws.state.container_venvs)
    # Only these runs use the container; other e2e files keep the fast path (a worker runs tests in turn).
    aws.state.container_venvs = {venv.version: venv.root}
    try:
        since = {}
        for dataset, change in DATASETS.items():
            hyperparameters = {"n_estimators": change.pop("n_estimators")} if "n_estimators" in change else {}
            config = iris_config(**change)
            config["hyperparameters"] = {**config.get("hyperparameters", {}), **hyperparameters}
            since[dataset] = upload(aws, dataset, config)
        runs = {dataset: runs_of(aws, dataset, 1, since[dataset])[0] for dataset in DATASETS}
        yield {"runs": runs, "notifications": receive_notifications(aws, queue, timeout=15)}
    finally:
        aws.state.container_venvs = saved


def _cause(notifications: list[dict[str, Any]], dataset: str) -> str:
    [message] = [json.loads(n["Message"]) for n in notifications if f'"{dataset}"' in n["Message"]]
    return message["cause"]


def test_a_run_under_the_containers_toolkits_deploys_and_answers_raw_rows(
    aws: EmbeddedAws, container_runs: dict[str, Any]
) -> None:
    run = container_runs["runs"]["ctr-iris"]
    assert run["status"] == "SUCCEEDED", failure_details(aws, run)
    [job] = aws.client("sagemaker").list_training_jobs(NameContains="ctr-iris")["TrainingJobSummaries"]
    log = (aws.state.work_dir / "jobs" / job["TrainingJobName"] / "logs" / "stderr.log").read_text()
    assert "sagemaker-containers" in log and "Reporting training SUCCESS" in log, (
        "the image's train command ran"
    )
    name = endpoint_name(aws, "ctr-iris")
    response = aws.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Accept="text/csv", Body=f"{SETOSA}\n{VIRGINICA}\n".encode()
    )
    assert response["ContentType"] == "text/csv; charset=utf-8"
    assert response["Body"].read().decode().split() == ["setosa", "virginica"]
    server_log = next((aws.state.work_dir / "endpoints" / name).glob("*/server.log")).read_text()
    assert "(container)" in server_log


def test_a_malformed_request_gets_a_4xx_with_the_recipes_message(
    aws: EmbeddedAws, container_runs: dict[str, Any]
) -> None:
    assert container_runs["runs"]["ctr-iris"]["status"] == "SUCCEEDED"
    with pytest.raises(ClientError) as refused:
        aws.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint_name(aws, "ctr-iris"), ContentType="application/json", Body=b"{not json"
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "ModelError"
    assert error["Message"].startswith("Received client error (400) from primary with message"), error
    assert "JSON" in error["Message"], error


def test_a_processing_dataset_error_reaches_the_notification(container_runs: dict[str, Any]) -> None:
    assert container_runs["runs"]["ctr-badproc"]["status"] == "FAILED"
    cause = _cause(container_runs["notifications"], "ctr-badproc")
    assert "DatasetError: " in cause and "flower_kind" in cause, cause


def test_a_training_dataset_error_reaches_the_notification(
    aws: EmbeddedAws, container_runs: dict[str, Any]
) -> None:
    assert container_runs["runs"]["ctr-badtrain"]["status"] == "FAILED"
    cause = _cause(container_runs["notifications"], "ctr-badtrain")
    assert "DatasetError: hyperparameter n-estimators=0 must be at least 1" in cause, cause
    # The job's own FailureReason is the container's train command's traceback (the script's message is only
    # in its log, where the notification found it), cut at 1,024 characters as on AWS.
    [job] = aws.client("sagemaker").list_training_jobs(NameContains="ctr-badtrain")["TrainingJobSummaries"]
    described = aws.client("sagemaker").describe_training_job(TrainingJobName=job["TrainingJobName"])
    reason = described["FailureReason"]
    assert reason.startswith("AlgorithmError: framework error:") and "DatasetError" not in reason, reason
    assert len(reason) <= 1024
