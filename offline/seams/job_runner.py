"""SageMaker processing and training jobs really run: the patch on moto's SageMaker API. Gap: moto 5.2.5
marks a job Completed at create and runs nothing; duplicate job names silently overwrite the old job (AWS:
ResourceInUse); `MetricDefinitions` are replaced by a canned one and `Environment` is dropped;
StopTrainingJob is not implemented and StopProcessingJob stops nothing.

On CreateTrainingJob / CreateProcessingJob (from any client or a Step Functions task) the job is InProgress
and job_process runs it on a worker thread under SageMaker's container contract (job_contract), in
`<work_dir>/jobs/<name>/` standing in for /opt/ml. Stop*Job sets Stopping, kills the job's process, and the
worker records Stopped.

moto internals touched: `moto.sagemaker.responses.SageMakerResponse.create_training_job` /
`.create_processing_job` (wrapped: duplicate check, Environment, run); `.stop_processing_job` (replaced) and
`.stop_training_job` (added): Stopping, the job's process is killed, then Stopped; `FakeTrainingJob` /
`FakeProcessingJob` attributes (status, times, artifacts: read by their `response_object`); the S3 and
CloudWatch Logs backends.
"""

from __future__ import annotations

import copy
from typing import Any

from offline.seams import _patching, job_process


def install(state: Any) -> None:
    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.responses import SageMakerResponse

    job_process.size_pool(state.max_parallel_jobs)

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
            job_process.start(job, _kind, state, self._get_param("Environment"), self.sagemaker_backend)
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
            job_process.transition(job, "Stopping", "Stopping the training job")
        else:
            job.processing_job_status = "Stopping"
        run = job_process.find_run(name)
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
    job_process.kill_all()
