"""Pipeline runs as the operator sees them, read from Step Functions executions and their histories.

A run is one execution of the pipeline state machine (its name is the run id). Everything is read
defensively: states are found by their history events, not by a fixed list, so a renamed or added step shows
up as it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops_cli.context import Aws
from mlops_cli.errors import CliError
from mlops_cli.output import iso

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# History events that carry an error and a cause, and the key of their details.
_FAILURE_DETAILS = {
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "TaskStartFailed": "taskStartFailedEventDetails",
    "TaskSubmitFailed": "taskSubmitFailedEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "LambdaFunctionStartFailed": "lambdaFunctionStartFailedEventDetails",
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
}
_EXECUTION_END = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
# Job name keys in a SageMaker task's parameters, and the CloudWatch log group of that kind of job.
JOB_KINDS = {
    "ProcessingJobName": ("processing", "/aws/sagemaker/ProcessingJobs"),
    "TrainingJobName": ("training", "/aws/sagemaker/TrainingJobs"),
    "TransformJobName": ("transform", "/aws/sagemaker/TransformJobs"),
}
# States that report or record an outcome rather than do a step of the run.
_BOOKKEEPING_PREFIXES = ("Notify", "Record", "Describe")


@dataclass
class Job:
    kind: str  # processing | training | transform
    name: str
    log_group: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "logGroup": self.log_group}


@dataclass
class Step:
    """One Task state of a run (a state visited again, e.g. a polling loop, counts its visits)."""

    name: str
    status: str = "running"  # running | succeeded | failed
    started: datetime | None = None
    ended: datetime | None = None
    seconds: float = 0.0
    visits: int = 0
    job: Job | None = None
    function: str | None = None  # the Lambda function a Lambda task ran
    error: str | None = None
    cause: str | None = None
    open_since: datetime | None = field(default=None, repr=False)  # the current visit's start
    entered_event: int = field(default=0, repr=False)  # history id of the latest visit's entry

    def close(self, stamp: datetime) -> None:
        """End the current visit (at its exit, or at its failure when no exit follows)."""
        if self.open_since is not None:
            self.seconds += (stamp - self.open_since).total_seconds()
            self.open_since = None
        self.ended = stamp

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "startedAt": iso(self.started),
            "endedAt": iso(self.ended),
            "durationSeconds": round(self.seconds, 3) if self.ended else None,
            "visits": self.visits,
            "job": self.job.to_json() if self.job else None,
            "function": self.function,
            "error": self.error,
            "cause": self.cause,
        }


@dataclass
class Failure:
    step: str
    error: str
    cause: str

    def to_json(self) -> dict[str, str]:
        return {"step": self.step, "error": self.error, "cause": self.cause}


@dataclass
class Run:
    name: str
    arn: str
    status: str
    started: datetime
    stopped: datetime | None
    input: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    steps: list[Step] = field(default_factory=list)
    failure: Failure | None = None
    children: list[str] = field(default_factory=list)  # nested executions (the deploy machine)

    @property
    def dataset(self) -> str | None:
        value = self.input.get("dataset")
        return str(value) if value else None

    @property
    def seconds(self) -> float:
        end = self.stopped or datetime.now(UTC)
        return max(0.0, (end - self.started).total_seconds())

    @property
    def step_reached(self) -> str | None:
        """The last step of the run itself that was entered (not the notification or bookkeeping)."""
        if self.failure:
            return self.failure.step
        doing = [s.name for s in self.steps if not s.name.startswith(_BOOKKEEPING_PREFIXES)]
        return doing[-1] if doing else None

    @property
    def outcome(self) -> str:
        """succeeded | deployed | pending_approval | failed | running | ... from the notification it sent."""
        if self.status != "SUCCEEDED":
            return self.status.lower()
        if self.stages:  # Stages=staging-prod: staged (awaiting promotion) or succeeded (promoted)
            return str(self.output["notification"].get("outcome") or "succeeded")
        found = find_key(self.output, ("outcome",))
        return str(found) if found else "succeeded"

    @property
    def stages(self) -> dict[str, Any] | None:
        """Stages=staging-prod: staging and prod as the run's notification reported them (docs/stages.md)."""
        notified = self.output.get("notification") if isinstance(self.output, dict) else None
        found = notified.get("stages") if isinstance(notified, dict) else None
        return found if isinstance(found, dict) else None

    def step(self, name: str) -> Step | None:
        wanted = name.lower()
        for step in self.steps:
            if step.name.lower() == wanted:
                return step
        matches = [s for s in self.steps if wanted in s.name.lower()]
        return matches[0] if len(matches) == 1 else None

    def summary_json(self) -> dict[str, Any]:
        return {
            "run": self.name,
            "dataset": self.dataset,
            "status": self.status,
            "outcome": self.outcome,
            "stepReached": self.step_reached,
            "startedAt": iso(self.started),
            "stoppedAt": iso(self.stopped),
            "durationSeconds": round(self.seconds, 3),
            "executionArn": self.arn,
            **({"stages": self.stages} if self.stages else {}),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary_json(),
            "source": (
                f"s3://{self.input['bucket']}/{self.input['key']}"
                if self.input.get("bucket") and self.input.get("key")
                else None
            ),
            "steps": [s.to_json() for s in self.steps],
            "failure": self.failure.to_json() if self.failure else None,
            "modelPackageArn": find_key(self.output, ("modelPackageArn", "ModelPackageArn")),
            "endpointName": find_key(self.output, ("endpointName", "EndpointName")),
            "metrics": find_key(self.output, ("metrics",)),
            "childExecutions": self.children,
        }


# ---------------------------------------------------------------- parsing


def find_key(value: Any, names: tuple[str, ...]) -> Any:
    """The first non-empty value under any of `names`, depth-first (execution outputs are nested)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in names and item not in (None, "", [], {}):
                return item
        for item in value.values():
            found = find_key(item, names)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = find_key(item, names)
            if found is not None:
                return found
    return None


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def readable_cause(cause: Any) -> str:
    """A Lambda error's cause is JSON ({errorType, errorMessage}); a job's is its Describe output."""
    parsed = _json(cause)
    if isinstance(parsed, dict):
        if "errorMessage" in parsed:
            return f"{parsed.get('errorType', 'Error')}: {parsed['errorMessage']}"
        for status_key, name_key in (
            ("ProcessingJobStatus", "ProcessingJobName"),
            ("TrainingJobStatus", "TrainingJobName"),
        ):
            if status_key in parsed:
                reason = parsed.get("FailureReason") or parsed.get("ExitMessage") or "no FailureReason given"
                return f"{parsed.get(name_key)} {parsed[status_key]}: {reason}"
        if "Cause" in parsed:
            return readable_cause(parsed["Cause"])
        if "cause" in parsed:
            return readable_cause(parsed["cause"])
    return "" if cause is None else str(cause)


def _job_of(parameters: Any) -> Job | None:
    parsed = _json(parameters)
    if not isinstance(parsed, dict):
        return None
    for key, (kind, group) in JOB_KINDS.items():
        if isinstance(parsed.get(key), str):
            return Job(kind, parsed[key], group)
    return None


def parse_history(  # noqa: PLR0912, PLR0915 - one pass over the history, a branch per kind of event
    events: list[dict[str, Any]],
) -> tuple[list[Step], Failure | None, list[str]]:
    """Task steps in the order they were first entered, the run's failure, and nested executions."""
    steps: dict[str, Step] = {}
    current: Step | None = None
    current_name: str | None = None
    first_failure: Failure | None = None
    final: tuple[str, str] | None = None
    children: list[str] = []
    # A SageMaker job runs as a Task inside a one-branch Parallel named for the step (ProcessData ->
    # ProcessDataJob), so that its errors can be sorted; the step is reported under the Parallel's name.
    parallel: str | None = None

    def step_name(name: str) -> str:
        return parallel if parallel and name.startswith(parallel) else name

    for event in sorted(events, key=lambda e: e["id"]):
        kind, stamp = event["type"], event["timestamp"]
        if kind == "ParallelStateEntered":
            parallel = event["stateEnteredEventDetails"]["name"]
        elif kind == "ParallelStateExited":
            parallel = None
        if kind.endswith("StateEntered"):
            current_name = step_name(event["stateEnteredEventDetails"]["name"])
            current = steps.get(current_name) if kind == "TaskStateEntered" else None
            if kind == "TaskStateEntered":
                if current is None:
                    current = steps[current_name] = Step(current_name, started=stamp)
                current.visits += 1
                current.status = "running"
                current.open_since = stamp
                current.entered_event = event["id"]
        elif kind.endswith("StateExited"):
            name = step_name(event["stateExitedEventDetails"]["name"])
            step = steps.get(name)
            if step is not None:
                step.close(stamp)
                if step.status == "running":
                    step.status = "succeeded"
        elif kind == "TaskScheduled" and current is not None:
            details = event.get("taskScheduledEventDetails", {})
            current.job = current.job or _job_of(details.get("parameters"))
            resource = details.get("resource", "")
            if details.get("resourceType") == "lambda" and resource.startswith("invoke"):
                function = _json(details.get("parameters"))
                if isinstance(function, dict) and function.get("FunctionName"):
                    current.function = str(function["FunctionName"]).rsplit(":function:", 1)[-1]
        elif kind == "LambdaFunctionScheduled" and current is not None:
            resource = event.get("lambdaFunctionScheduledEventDetails", {}).get("resource", "")
            current.function = resource.rsplit(":function:", 1)[-1].split(":", 1)[0] or None
        elif kind in ("TaskSubmitted", "TaskSucceeded"):
            details = event.get("taskSubmittedEventDetails") or event.get("taskSucceededEventDetails") or {}
            output = _json(details.get("output"))
            arn = output.get("ExecutionArn") if isinstance(output, dict) else None
            if current is not None and current.job is None:
                current.job = _job_of(output)
            if isinstance(arn, str) and arn not in children:
                children.append(arn)
        if kind in _FAILURE_DETAILS:
            details = event.get(_FAILURE_DETAILS[kind], {})
            error = str(details.get("error") or kind)
            cause = readable_cause(details.get("cause"))
            if kind in _EXECUTION_END:
                final = (error, cause)
            else:
                if current is not None:
                    current.status, current.error, current.cause = "failed", error, cause
                    current.close(stamp)
                if first_failure is None:
                    first_failure = Failure(current_name or "(execution)", error, cause)
    failure = None
    if final or first_failure:
        failure = first_failure or Failure("(execution)", *final)  # type: ignore[misc]
        if final:
            # The run's own summary (the notification's words) is the clearest cause; the root step stays.
            error, cause = final
            step_prefix = f"{failure.step}: "
            failure = Failure(failure.step, error, cause.removeprefix(step_prefix))
    return list(steps.values()), failure, children


# ---------------------------------------------------------------- reading runs


def pipeline_arn(aws: Aws) -> str:
    return aws.output("PipelineStateMachineArn", "the pipeline state machine")


def history(aws: Aws, execution_arn: str) -> list[dict[str, Any]]:
    pages = aws.client("stepfunctions").get_paginator("get_execution_history")
    return [event for page in pages.paginate(executionArn=execution_arn) for event in page["events"]]


def describe(aws: Aws, execution_arn: str, with_history: bool = True) -> Run:
    described = aws.client("stepfunctions").describe_execution(executionArn=execution_arn)
    run = Run(
        name=described["name"],
        arn=described["executionArn"],
        status=described["status"],
        started=described["startDate"],
        stopped=described.get("stopDate"),
        input=_json(described.get("input")) if isinstance(_json(described.get("input")), dict) else {},
        output=_json(described.get("output")),
    )
    if with_history:
        run.steps, run.failure, run.children = parse_history(history(aws, execution_arn))
    if run.status in TERMINAL and run.status != "SUCCEEDED" and run.failure is None:
        run.failure = Failure(
            "(execution)", str(described.get("error") or run.status), readable_cause(described.get("cause"))
        )
    return run


def executions(aws: Aws, state_machine_arn: str, status: str | None = None) -> Iterator[dict[str, Any]]:
    """Newest first (the API's order)."""
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn}
    if status:
        kwargs["statusFilter"] = status
    for page in aws.client("stepfunctions").get_paginator("list_executions").paginate(**kwargs):
        yield from page["executions"]


def list_runs(
    aws: Aws,
    limit: int = 20,
    dataset: str | None = None,
    status: str | None = None,
    with_history: bool = True,
) -> list[Run]:
    runs: list[Run] = []
    newest_first = sorted(
        executions(aws, pipeline_arn(aws), status), key=lambda e: e["startDate"], reverse=True
    )
    for execution in newest_first:
        run = describe(aws, execution["executionArn"], with_history=False)
        if dataset and run.dataset != dataset:
            continue
        if with_history:
            run.steps, run.failure, run.children = parse_history(history(aws, run.arn))
        runs.append(run)
        if len(runs) >= limit:
            break
    return runs


def find_run(aws: Aws, ref: str) -> Run:
    """A run by execution name, execution ARN, unique name prefix, or dataset (its newest run)."""
    from botocore.exceptions import ClientError

    machine = pipeline_arn(aws)
    arn = ref if ref.startswith("arn:") else f"{machine.replace(':stateMachine:', ':execution:', 1)}:{ref}"
    try:
        return describe(aws, arn)
    except ClientError as error:
        if "ExecutionDoesNotExist" not in str(error) and "InvalidArn" not in str(error):
            raise
    newest_first = sorted(executions(aws, machine), key=lambda e: e["startDate"], reverse=True)
    by_prefix = [e for e in newest_first if e["name"].startswith(ref)]
    if len({e["name"] for e in by_prefix}) == 1:
        return describe(aws, by_prefix[0]["executionArn"])
    for execution in newest_first:
        run = describe(aws, execution["executionArn"], with_history=False)
        if run.dataset == ref:
            return describe(aws, run.arn)
    if len(by_prefix) > 1:
        names = ", ".join(e["name"] for e in by_prefix[:5])
        raise CliError(f"run {ref!r} is ambiguous ({names}...): give the whole name (mlops runs list)")
    raise CliError(
        f"no run {ref!r} in stack {aws.target.stack}: give a run name or a dataset from `mlops runs list`"
    )


def newest_run(aws: Aws, since: datetime | None = None) -> Run | None:
    """The newest running run; else the newest run started since `since`."""
    machine = pipeline_arn(aws)
    running = sorted(executions(aws, machine, "RUNNING"), key=lambda e: e["startDate"], reverse=True)
    if running:
        return describe(aws, running[0]["executionArn"])
    recent = sorted(executions(aws, machine), key=lambda e: e["startDate"], reverse=True)
    if recent and (since is None or recent[0]["startDate"] >= since):
        return describe(aws, recent[0]["executionArn"])
    return None


# ---------------------------------------------------------------- following


@dataclass
class Progress:
    """What `follow` prints: one line per step as it ends (with its duration), once per step."""

    reported: set[tuple[str, str]] = field(default_factory=set)

    def lines(self, label: str, run: Run) -> list[tuple[str, str, Step]]:
        """Steps that ended and that the run has moved past (a polling loop's step is reported once, with
        its visits and total time, when the next step starts), or every ended step once the run is over."""
        out = []
        latest = max(run.steps, key=lambda s: s.entered_event, default=None)
        for step in run.steps:
            if step.status == "running" or (step is latest and run.status not in TERMINAL):
                continue
            key = (run.arn, step.name)
            if key in self.reported:
                continue
            self.reported.add(key)
            out.append((label, step.status, step))
        return out


def follow(
    aws: Aws,
    run: Run,
    emit: Callable[[str, str, Step], None],
    *,
    interval: float = 2.0,
    timeout: float = 6 * 3600,
    sleep: Callable[[float], None] = time.sleep,
) -> Run:
    """Poll the run (and the deployment it starts) until it ends; emit each finished step once."""
    progress = Progress()
    deadline = time.monotonic() + timeout
    while True:
        run = describe(aws, run.arn)
        for item in progress.lines("run", run):
            emit(*item)
        for child_arn in run.children:
            child = describe(aws, child_arn)
            for item in progress.lines("deploy", child):
                emit(*item)
        if run.status in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise CliError(f"run {run.name} still {run.status} after {timeout:.0f}s: follow it again later")
        sleep(interval)
