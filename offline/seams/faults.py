"""Fault injection. Gap: moto cannot make one specific call fail (throttling, capacity errors) or a
job end Failed/Stopped on demand, and botocore's Stubber only reaches clients a test creates itself.

- `fail_api(service, operation, error_code, times)`: the next `times` calls of that API made by a Lambda
  handler (running in-process through the Lambda seam) or by the Step Functions interpreter (moto's
  `boto_client_for` signs with the access key "ak") raise that AWS error. The test's own clients are never
  affected. The error is raised before the request is sent, after the SDK's retries, so `times` is exact.
- `force_job_outcome(kind, status, reason, times)`: the next training/processing job ends with that status and
  reason without running its code (for outcomes too slow to reproduce, such as MaxRuntimeExceeded).

moto/botocore internals touched: `botocore.client.BaseClient._make_api_call` (wrapped);
`moto.stepfunctions.parser.asl.utils.boto_client.boto_client_for` signs with access key "ak" (relied on).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from offline.seams import _patching

# moto's Step Functions interpreter creates its clients with this access key (asl/utils/boto_client.py).
INTERPRETER_ACCESS_KEY = "ak"

_JOB_KINDS = ("training", "processing", "transform")
_JOB_STATUSES = ("Failed", "Stopped")
_ENDPOINT_STATUSES = ("UpdateRollbackFailed", "Failed", "OutOfService", "RollingBack")
_SERVER_ERRORS = {"InternalFailure": 500, "InternalServerError": 500, "ServiceUnavailable": 503}


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").replace(" ", "").lower()


@dataclass
class ApiFault:
    service: str
    operation: str
    error_code: str
    message: str
    http_status: int
    remaining: int


@dataclass
class JobOutcome:
    kind: str
    status: str
    reason: str
    remaining: int


@dataclass
class EndpointOutcome:
    status: str
    reason: str
    remaining: int


@dataclass
class FiredFault:
    service: str
    operation: str
    error_code: str


@dataclass
class FaultTable:
    """The armed faults of one offline AWS (OfflineState.faults; the harness exposes it as `aws.faults`)."""

    api_faults: list[ApiFault] = field(default_factory=list)
    job_outcomes: list[JobOutcome] = field(default_factory=list)
    endpoint_outcomes: list[EndpointOutcome] = field(default_factory=list)
    fired: list[FiredFault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_api(
        self,
        service: str,
        operation: str,
        error_code: str,
        times: int = 1,
        *,
        message: str | None = None,
        http_status: int | None = None,
    ) -> None:
        """Make the next `times` calls of service.operation (e.g. "sagemaker", "CreateTrainingJob") fail."""
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        if not service or not operation or not error_code:
            raise ValueError(
                "service, operation and error_code are all required, e.g. fail_api('sagemaker', ...)"
            )
        with self.lock:
            self.api_faults.append(
                ApiFault(
                    service=_norm(service),
                    operation=_norm(operation),
                    error_code=error_code,
                    message=message or f"Injected offline fault: {error_code} on {service}.{operation}",
                    http_status=http_status or _SERVER_ERRORS.get(error_code, 400),
                    remaining=times,
                )
            )

    def force_job_outcome(self, kind: str, status: str, reason: str, times: int = 1) -> None:
        """The next `times` jobs of this kind (training|processing|transform) end with status
        (Failed|Stopped) and reason."""
        if kind not in _JOB_KINDS:
            raise ValueError(f"kind must be one of {_JOB_KINDS}, got {kind!r}")
        if status not in _JOB_STATUSES:
            raise ValueError(f"status must be one of {_JOB_STATUSES}, got {status!r}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self.lock:
            self.job_outcomes.append(JobOutcome(kind=kind, status=status, reason=reason, remaining=times))

    def force_endpoint_update_outcome(self, status: str, reason: str, times: int = 1) -> None:
        """The next `times` UpdateEndpoint calls end with the endpoint in `status` (e.g. UpdateRollbackFailed,
        Failed, OutOfService, RollingBack) and `reason` as FailureReason, instead of InService on the new
        config; the old fleet keeps serving."""
        if status not in _ENDPOINT_STATUSES:
            raise ValueError(f"status must be one of {_ENDPOINT_STATUSES}, got {status!r}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self.lock:
            self.endpoint_outcomes.append(EndpointOutcome(status=status, reason=reason, remaining=times))

    def take_endpoint_outcome(self) -> EndpointOutcome | None:
        with self.lock:
            for outcome in self.endpoint_outcomes:
                outcome.remaining -= 1
                if outcome.remaining == 0:
                    self.endpoint_outcomes.remove(outcome)
                return outcome
        return None

    def clear(self) -> None:
        with self.lock:
            self.api_faults.clear()
            self.job_outcomes.clear()
            self.endpoint_outcomes.clear()
            self.fired.clear()

    def take_api_fault(self, service_names: set[str], operation: str) -> ApiFault | None:
        op = _norm(operation)
        with self.lock:
            for fault in self.api_faults:
                if fault.operation == op and fault.service in service_names:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.api_faults.remove(fault)
                    self.fired.append(FiredFault(fault.service, operation, fault.error_code))
                    return fault
        return None

    def take_job_outcome(self, kind: str) -> JobOutcome | None:
        with self.lock:
            for outcome in self.job_outcomes:
                if outcome.kind == kind:
                    outcome.remaining -= 1
                    if outcome.remaining == 0:
                        self.job_outcomes.remove(outcome)
                    return outcome
        return None


# ---------------------------------------------------------------- who is calling

_scope = threading.local()


@contextlib.contextmanager
def handler_scope() -> Iterator[None]:
    """Calls made in this thread until exit come from a Lambda handler (faults apply to them)."""
    _scope.depth = getattr(_scope, "depth", 0) + 1
    try:
        yield
    finally:
        _scope.depth -= 1


def _in_handler() -> bool:
    return getattr(_scope, "depth", 0) > 0


def _access_key(client: Any) -> str | None:
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    return getattr(credentials, "access_key", None)


def _service_names(client: Any) -> set[str]:
    model = client.meta.service_model
    names = {model.service_name, model.endpoint_prefix, model.signing_name, model.service_id}
    names |= {"stepfunctions", "states", "sfn"} if model.service_name == "stepfunctions" else set()
    return {_norm(str(name)) for name in names if name}


def _make_error(client: Any, fault: ApiFault, operation_name: str) -> Exception:
    response = {
        "Error": {"Code": fault.error_code, "Message": fault.message},
        "ResponseMetadata": {
            "HTTPStatusCode": fault.http_status,
            "RequestId": str(uuid.uuid4()),
            "HTTPHeaders": {},
            "RetryAttempts": 0,
        },
    }
    error_class = client.exceptions.from_code(fault.error_code)
    return error_class(response, operation_name)


def install(state: Any) -> None:
    import botocore.client

    original = _patching.original(botocore.client.BaseClient, "_make_api_call")
    table: FaultTable = state.faults

    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if table.api_faults and (_in_handler() or _access_key(self) == INTERPRETER_ACCESS_KEY):
            fault = table.take_api_fault(_service_names(self), operation_name)
            if fault is not None:
                raise _make_error(self, fault, operation_name)
        return original(self, operation_name, api_params)

    _patching.replace(botocore.client.BaseClient, "_make_api_call", _make_api_call)
