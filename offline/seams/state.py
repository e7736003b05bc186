"""What the seams share with the harness: the work directory, ports, faults and a registry the harness
fills."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from offline.seams.faults import FaultTable


class FunctionCodeLike(Protocol):
    """What the Lambda seam needs to know about a function the harness deployed
    (offline.stack.FunctionCode)."""

    @property
    def code_dir(self) -> Path: ...

    @property
    def layer_dirs(self) -> Sequence[Path]: ...


@dataclass
class AsyncInvocation:
    """One asynchronous (Event) Lambda invocation made by an EventBridge target, and how it ended."""

    function_name: str
    source: str
    event: Any
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    # The SQS queue the event went to after the delivery or the handler failed for good (dead letter).
    dead_letter_queue: str | None = None


@dataclass
class Registry:
    """Filled by the harness (functions) and by the seams (everything else); read by tests and the CLI."""

    # function name -> where its code lives locally (.aws-sam/build/<LogicalId>/ and the layers' build dirs);
    # functions not listed here run from their deployment package, extracted under <work_dir>/lambda/.
    functions: dict[str, FunctionCodeLike] = field(default_factory=dict)
    async_invocations: list[AsyncInvocation] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def register_functions(self, functions: Mapping[str, FunctionCodeLike]) -> None:
        with self.lock:
            self.functions.update(functions)

    def wait_for_async_invocations(self, timeout: float = 30.0) -> list[AsyncInvocation]:
        """Block until every async invocation started so far has finished; return them all."""
        with self.lock:
            pending = list(self.async_invocations)
        for invocation in pending:
            invocation.done.wait(timeout)
        return pending


@dataclass
class Settling:
    """Work that takes minutes on AWS and seconds here, running in the background (an endpoint starting or
    updating). A shortened Wait state still lasts until such work is done, at most the Wait's real length:
    on AWS the Wait would have outlasted it, so a poll loop's count of checks means the same offline, however
    loaded the machine is."""

    running: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)

    def begin(self) -> None:
        with self.condition:
            self.running += 1

    def end(self) -> None:
        with self.condition:
            self.running -= 1
            self.condition.notify_all()

    def wait(self, timeout: float) -> bool:
        """Block until nothing is settling or `timeout` passes; True when nothing is."""
        with self.condition:
            return self.condition.wait_for(lambda: self.running == 0, timeout=max(timeout, 0.0))


@dataclass
class OfflineState:
    """Configuration and shared state of one offline AWS (one per process)."""

    work_dir: Path = Path(".offline")
    # Wait states and Retry intervals sleep at most this long offline; the ASL is not changed.
    max_wait_seconds: float = 0.05
    # Wait states that sleep their real length: the batch waiter's wait is the dataset's quiet time, already
    # seconds offline (DatasetQuietSeconds); shortened, one quiet check would become dozens of Lambda calls.
    real_time_wait_states: frozenset[str] = frozenset({"WaitForQuiet"})
    # Server mode: the URL handlers' boto3 clients must call (AWS_ENDPOINT_URL). None = in-process mock_aws,
    # or http://localhost:$MOTO_PORT when moto runs as a server and this is not set.
    endpoint_url: str | None = None
    # Jobs running at once (2-core machine: more only slows each down).
    max_parallel_jobs: int = 2
    # A job without StoppingCondition.MaxRuntimeInSeconds gets this (AWS's default is 1 day).
    default_job_timeout_seconds: float = 3600.0
    # How long an inference server may take to answer /ping before the endpoint is Failed.
    endpoint_start_timeout_seconds: float = 60.0
    # Python used for jobs and inference servers (None = the interpreter running the seams).
    python: str | None = None
    # scikit-learn container version ("1.4-2-py312") -> a virtualenv built by `make container-venv`: jobs and
    # endpoints of that image run under the container's Python, pins and toolkits (container_runtime.py).
    container_venvs: dict[str, Path] = field(default_factory=dict)
    faults: FaultTable = field(default_factory=FaultTable)
    settling: Settling = field(default_factory=Settling)
    registry: Registry = field(default_factory=Registry)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir).resolve()
