"""Step Functions' SageMaker integrations, fast waits and AWS-like error names.

Gaps filled (moto 5.2.5, ASL interpreter on):
- `arn:aws:states:::sagemaker:createTrainingJob.sync` / `createProcessingJob.sync` / `createTransformJob.sync`
  fail with "Unsupported .sync callback procedure" (sagemaker is in `_UNSUPPORTED_SERVICE_NAMES`). Here the
  job is created (request-response), then the task waits until Describe*Job says Completed and returns that
  Describe output, as AWS does; a Failed or Stopped job fails the task with States.TaskFailed and the Describe
  output as Cause. Request-response sagemaker tasks (createModel, createEndpointConfig, createEndpoint,
  updateEndpoint, ...) call moto's SageMaker (and so the job and endpoint seams). API errors are named like
  AWS's optimised integration: `SageMaker.AmazonSageMakerException` for errors the service model does not
  declare (validation, throttling, internal errors: the Cause carries the error code and message), the
  modelled ones by name (`SageMaker.ResourceLimitExceededException`, `SageMaker.ResourceInUseException`, ...).
  Timestamps in outputs are epoch milliseconds, as in AWS's Describe*Job outputs.
- Wait states sleep for real: they sleep at most `OfflineState.max_wait_seconds` (the ASL is unchanged),
  except those named in `OfflineState.real_time_wait_states` (the batch waiter's quiet time); so do
  Retry intervals and the interpreter's 0.5 s poll of `.sync` / `.sync:2` tasks (nested executions). A Wait
  also lasts while an endpoint is starting or updating (`OfflineState.settling`), at most its real length: on
  AWS the Wait would outlast that work, so a poll loop's count of checks means the same on a loaded machine.
- `aws-sdk:sagemaker:*` errors are named `sagemaker.sagemakerException`: here the AWS form,
  `SageMaker.<ModelledError>Exception` (e.g. `SageMaker.ResourceNotFoundException`) or, for errors the service
  model does not declare (ValidationException, ThrottlingException), `SageMaker.SageMakerException`.

moto internals touched: `...state_task.state_task_factory.state_task_service_for` (wrapped for "sagemaker");
`...state_task.service.state_task_service_callback.StateTaskServiceCallback` (subclassed) and its module
constant `_DELAY_SECONDS_SYNC_CONDITION_CHECK`;
`...state.wait.wait_function.wait_function.WaitFunction._wait_interval` (replaced);
`...common.retry.retrier_decl.time` (module reference replaced by a capped sleep);
`...service.state_task_service_aws_sdk._SERVICE_ERROR_NAMES` and
`StateTaskServiceAwsSdk._normalise_exception_name`.
"""

from __future__ import annotations

import datetime
import time
import types
from collections.abc import Callable
from typing import Any

from offline.seams import _patching

# API action (lower case) -> (describe method, name parameter, status field) for the .sync pattern.
SYNC_APIS: dict[str, tuple[str, str, str]] = {
    "createtrainingjob": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "createprocessingjob": ("describe_processing_job", "ProcessingJobName", "ProcessingJobStatus"),
    "createtransformjob": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}
FAILED_STATUSES = {"Failed", "Stopped"}

_AWS_SDK_SERVICE_NAMES = {
    "sagemaker": "SageMaker",
    "s3": "S3",
    "lambda": "Lambda",
    "cloudwatch": "CloudWatch",
}


def jsonable(value: Any) -> Any:
    """boto3 response -> what Step Functions passes on: datetimes become epoch milliseconds."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def optimized_error_name(error: Exception) -> str:
    """The optimized integration's error name: modelled SageMaker errors by name (e.g.
    `SageMaker.ResourceLimitExceededException`), everything else (validation, throttling, internal errors)
    `SageMaker.AmazonSageMakerException`, telling them apart only in the Cause's error code."""
    name = type(error).__name__
    if name == "ClientError":
        return "SageMaker.AmazonSageMakerException"
    return f"SageMaker.{name}" if name.endswith("Exception") else f"SageMaker.{name}Exception"


def aws_sdk_error_name(service: str, error: Exception) -> str:
    """`aws-sdk:` tasks: `<Service>.<ModelledError>Exception`, or `<Service>.<Service>Exception` for an error
    the service model does not declare (for SageMaker: ValidationException, ThrottlingException, ...)."""
    name = type(error).__name__
    name = service if name == "ClientError" else name
    return f"{service}.{name}" if name.endswith("Exception") else f"{service}.{name}Exception"


def _make_service_class(job_waiter: Callable[[str, float], None]) -> type:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback_module,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    class StateTaskServiceSageMaker(callback_module.StateTaskServiceCallback):
        """arn:aws:states:::sagemaker:<api>[.sync|.waitForTaskToken] on moto's SageMaker."""

        def __init__(self) -> None:
            super().__init__(
                supported_integration_patterns={ResourceCondition.WaitForTaskToken, ResourceCondition.Sync}
            )

        def _validate_service_integration_is_supported(self) -> None:
            # Every SageMaker API is reachable request-response; .sync is checked when the task runs.
            return None

        def _client(self, region: str, credentials: Any) -> Any:
            return boto_client_for(region=region, service="sagemaker", state_credentials=credentials)

        def _eval_service_task(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> None:
            client = self._client(resource_runtime_part.region, state_credentials)
            response = getattr(client, self._get_boto_service_action())(**normalised_parameters) or {}
            env.stack.append(jsonable(response))

        def _failure(self, env: Any, error: str, cause: str) -> Any:
            return FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed)
                if error == "States.TaskFailed"
                else CustomErrorName(error),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                        error=error,
                        cause=cause,
                    )
                ),
            )

        def _build_sync_resolver(
            self, env: Any, resource_runtime_part: Any, normalised_parameters: dict, state_credentials: Any
        ) -> Callable[[], Any]:
            action = self.resource.api_action.lower()
            if action not in SYNC_APIS:
                raise RuntimeError(
                    f"Unsupported .sync callback procedure in resource {self.resource.resource_arn}"
                )
            describe, name_key, status_key = SYNC_APIS[action]
            env.stack.pop()  # the create response; the Describe output replaces it
            name = normalised_parameters[name_key]
            client = self._client(resource_runtime_part.region, state_credentials)

            def resolve() -> Any:
                job_waiter(name, 1.0)  # returns as soon as the job ends: no 0.5 s polling lag
                description = jsonable(getattr(client, describe)(**{name_key: name}))
                status = description.get(status_key)
                if status == "Completed":
                    return description
                if status in FAILED_STATUSES:
                    raise FailureEventException(
                        self._failure(env, "States.TaskFailed", to_json_str(description))
                    )
                return None

            return resolve

        def _from_error(self, env: Any, ex: Exception) -> Any:
            if isinstance(ex, ClientError):
                error = ex.response.get("Error", {})
                meta = ex.response.get("ResponseMetadata", {})
                cause = (
                    f"{error.get('Message', '')} (Service: AmazonSageMaker; Status Code: "
                    f"{meta.get('HTTPStatusCode', 400)}; Error Code: {error.get('Code', 'Unknown')}; "
                    f"Request ID: {meta.get('RequestId', '')}; Proxy: null)"
                )
                return self._failure(env, optimized_error_name(ex), cause)
            return super()._from_error(env=env, ex=ex)

    return StateTaskServiceSageMaker


def _operation_model(action: str) -> Any:
    import botocore.session

    name = "".join(part[:1].upper() + part[1:] for part in action.split("_"))
    return botocore.session.get_session().get_service_model("stepfunctions").operation_model(name)


def _install_sfn_casing() -> None:
    """`states:startExecution[.sync[:2]]` sends ASL's PascalCase parameters to boto3, whose Step Functions API
    is
    camelCase (KeyError 'StateMachineArn'), and reads PascalCase keys from camelCase responses. Convert both
    ways
    with the interpreter's own shape-driven helpers, as AWS does."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    normalise_parameters = _patching.original(StateTaskServiceSfn, "_normalise_parameters")
    _patching.original(StateTaskServiceSfn, "_to_boto_request")
    _patching.original(StateTaskServiceSfn, "_from_boto_response")

    def _normalise_parameters(
        self: Any,
        parameters: dict,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        normalise_parameters(self, parameters, boto_service_name, service_action_name)
        action = service_action_name or self._get_boto_service_action()
        self._to_boto_request(parameters, _operation_model(action).input_shape)

    def _normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        action = service_action_name or self._get_boto_service_action()
        self._from_boto_response(response, _operation_model(action).output_shape)

    _patching.replace(StateTaskServiceSfn, "_normalise_parameters", _normalise_parameters)
    _patching.replace(StateTaskServiceSfn, "_normalise_response", _normalise_response, must_exist=False)


class _CappedTime(types.ModuleType):
    """Stands in for the `time` module inside the retrier: same API, shorter sleeps."""

    def __init__(self, cap: float) -> None:
        super().__init__("time")
        self._cap = cap

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self._cap))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def install(state: Any) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
        state_task_service_callback,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    from offline.seams import job_process

    cap = float(state.max_wait_seconds)
    service_class = _make_service_class(job_process.wait_for_job)
    factory = _patching.original(state_task_factory, "state_task_service_for")

    def state_task_service_for(service_name: str) -> Any:
        if service_name == "sagemaker":
            return service_class()
        return factory(service_name)

    _patching.replace(state_task_factory, "state_task_service_for", state_task_service_for)

    def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
        if wait_seconds <= 0:
            return
        if env.states.context_object.context_object_data["State"]["Name"] in state.real_time_wait_states:
            env.program_state_event.wait(wait_seconds)  # set when the execution stops
            return
        env.program_state_event.wait(min(wait_seconds, cap))
        # An endpoint still starting would have started within the real Wait: wait for it (in slices, so a
        # stopped execution still ends at once), at most the Wait's real length.
        deadline = time.monotonic() + wait_seconds - cap
        while env.is_running() and (remaining := deadline - time.monotonic()) > 0:
            if state.settling.wait(min(remaining, 0.1)):
                return

    _patching.original(WaitFunction, "_wait_interval")
    _patching.replace(WaitFunction, "_wait_interval", _wait_interval)
    _patching.replace(retrier_decl, "time", _CappedTime(cap))
    _patching.replace(
        state_task_service_callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", min(0.5, max(cap, 0.01))
    )

    names = dict(_patching.original(state_task_service_aws_sdk, "_SERVICE_ERROR_NAMES"))
    names.update(_AWS_SDK_SERVICE_NAMES)
    _patching.replace(state_task_service_aws_sdk, "_SERVICE_ERROR_NAMES", names)

    def _normalise_exception_name(norm_service_name: str, ex: Exception) -> str:
        return aws_sdk_error_name(norm_service_name, ex)

    _install_sfn_casing()

    aws_sdk = state_task_service_aws_sdk.StateTaskServiceAwsSdk
    _patching.original(aws_sdk, "_normalise_exception_name")
    _patching.replace(aws_sdk, "_normalise_exception_name", staticmethod(_normalise_exception_name))
