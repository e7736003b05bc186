"""A run's logs: its jobs' CloudWatch Logs streams and its Lambda invocations' lines (by correlation id).

Job logs: SageMaker writes each job to /aws/sagemaker/<Kind>Jobs, streams '<job name>/algo-1-<epoch>'.
Lambda lines: the handlers log JSON with `correlation_id` = the run id (Powertools); every line of an
invocation that logged the run id is shown (START .. END, so an error report after the handler's last log line
is there too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_cli import runs
from mlops_cli.context import Aws
from mlops_cli.errors import CliError
from mlops_cli.output import Printer, iso

# Lambda log events are looked for from a little before the run started to a little after it stopped.
_MARGIN = timedelta(minutes=5)


@dataclass
class JobLog:
    step: str
    job: runs.Job
    streams: list[str]
    lines: list[str]
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "job": self.job.to_json(),
            "logStreams": self.streams,
            "lines": self.lines,
            "truncated": self.truncated,
        }


@dataclass
class LambdaLine:
    function: str
    timestamp: datetime
    message: str
    level: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "timestamp": iso(self.timestamp),
            "level": self.level,
            "message": self.message,
        }


@dataclass
class LogReport:
    run: str
    steps: list[str]
    jobs: list[JobLog] = field(default_factory=list)
    lambda_lines: list[LambdaLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "steps": self.steps,
            "jobs": [j.to_json() for j in self.jobs],
            "lambda": [line.to_json() for line in self.lambda_lines],
            "notes": self.notes,
        }


def choose_steps(run: runs.Run, step_name: str | None) -> list[runs.Step]:
    """The named step; else the failed step; else every step that ran a job."""
    if step_name:
        step = run.step(step_name)
        if step is None:
            known = ", ".join(s.name for s in run.steps) or "none yet"
            raise CliError(f"run {run.name} has no step {step_name!r} (its steps: {known})")
        return [step]
    failed = [s for s in run.steps if s.status == "failed"]
    if failed:
        return failed[:1]
    return [s for s in run.steps if s.job]


def job_log(aws: Aws, step: str, job: runs.Job, max_lines: int) -> JobLog:
    from botocore.exceptions import ClientError

    logs = aws.client("logs")
    try:
        pages = logs.get_paginator("describe_log_streams").paginate(
            logGroupName=job.log_group, logStreamNamePrefix=f"{job.name}/"
        )
        streams = sorted(s["logStreamName"] for page in pages for s in page["logStreams"])
    except ClientError as error:
        if "ResourceNotFound" not in str(error):
            raise
        streams = []
    lines: list[str] = []
    for stream in streams:
        lines.extend(_stream_lines(aws, job.log_group, stream))
    truncated = len(lines) > max_lines
    return JobLog(step, job, streams, lines[-max_lines:] if truncated else lines, truncated)


def _stream_lines(aws: Aws, group: str, stream: str) -> list[str]:
    logs = aws.client("logs")
    lines: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        response = logs.get_log_events(**kwargs)
        lines.extend(event["message"] for event in response["events"])
        # The API returns the same token again once the end of the stream is reached.
        if not response["events"] or response.get("nextForwardToken") in (None, token):
            return lines
        token = response["nextForwardToken"]


def lambda_groups(aws: Aws) -> dict[str, str]:
    """Log group -> function name, for every function of the stack."""
    functions = aws.physical_ids("AWS::Lambda::Function").values()
    return {f"/aws/lambda/{name}": name for name in sorted(functions)}


def lambda_lines(aws: Aws, run: runs.Run, max_lines: int) -> list[LambdaLine]:
    """Every line of each Lambda invocation that logged the run id, oldest first."""
    from botocore.exceptions import ClientError

    logs = aws.client("logs")
    start = int((run.started - _MARGIN).timestamp() * 1000)
    end = int(((run.stopped or datetime.now(UTC)) + _MARGIN).timestamp() * 1000)
    found: list[LambdaLine] = []
    for group, function in lambda_groups(aws).items():
        invocations: dict[str, set[str]] = {}  # stream -> request ids that logged the run id
        try:
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=group, startTime=start, endTime=end, filterPattern=f'"{run.name}"'
            )
            for event in (e for page in pages for e in page["events"]):
                if run.name not in event["message"]:  # the pattern is a term match; be exact
                    continue
                record = _json(event["message"])
                request = record.get("function_request_id") if isinstance(record, dict) else None
                invocations.setdefault(event["logStreamName"], set()).add(request or "")
        except ClientError as error:
            if "ResourceNotFound" in str(error):
                continue
            raise
        for stream, requests in invocations.items():
            found.extend(
                _invocation_lines(aws, group, function, stream, requests=requests, run_name=run.name)
            )
    found.sort(key=lambda line: line.timestamp)
    return found[-max_lines:]


def _invocation_lines(
    aws: Aws, group: str, function: str, stream: str, *, requests: set[str], run_name: str
) -> list[LambdaLine]:
    """The lines of the invocations (START RequestId: <id> .. END RequestId: <id>) that logged the run id."""
    logs = aws.client("logs")
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        response = logs.get_log_events(**kwargs)
        events.extend(response["events"])
        if not response["events"] or response.get("nextForwardToken") in (None, token):
            break
        token = response["nextForwardToken"]
    out: list[LambdaLine] = []
    inside = False
    for event in events:
        message = event["message"]
        if message.startswith("START RequestId: "):
            inside = message.split()[2] in requests
        if message.startswith('{"_aws"'):
            continue  # embedded metrics: numbers for CloudWatch, not lines for people
        if inside or run_name in message:
            out.append(_line(function, event))
        if message.startswith("END RequestId: "):
            inside = False
    return out


def _line(function: str, event: dict[str, Any]) -> LambdaLine:
    record = _json(event["message"])
    stamp = datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC)
    if isinstance(record, dict) and "message" in record:
        extra = {k: v for k, v in record.items() if k not in _POWERTOOLS_KEYS}
        text = str(record["message"]) + (f" {json.dumps(extra, default=str)}" if extra else "")
        return LambdaLine(function, stamp, text, str(record.get("level") or "") or None)
    message = event["message"]
    level = "ERROR" if message.startswith("[ERROR]") else None
    return LambdaLine(function, stamp, message, level)


# Powertools' standard keys: shown once as columns, not repeated in every message.
_POWERTOOLS_KEYS = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "correlation_id",
    "xray_trace_id",
    "sampling_rate",
}


def _json(text: str) -> Any:
    if not text.startswith("{"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def collect(aws: Aws, run: runs.Run, step_name: str | None, max_lines: int) -> LogReport:
    chosen = choose_steps(run, step_name)
    report = LogReport(run.name, [s.name for s in chosen])
    for step in chosen:
        if step.job:
            job = job_log(aws, step.name, step.job, max_lines)
            if not job.streams:
                report.notes.append(
                    f"{step.name}: no log stream {step.job.name}/* in {step.job.log_group} (the job may not "
                    "have started)"
                )
            report.jobs.append(job)
        elif step_name:
            report.notes.append(f"{step.name} runs no job: its Lambda lines are below")
    report.lambda_lines = lambda_lines(aws, run, max_lines)
    if not chosen:
        report.notes.append(f"run {run.name} has run no job yet")
    return report


def print_report(out: Printer, run: runs.Run, report: LogReport) -> None:
    for job in report.jobs:
        out.heading(f"{job.step}: {job.job.kind} job {job.job.name} ({job.job.log_group})")
        if job.truncated:
            out.line("  ... (earlier lines left out: --lines N shows more)", style="dim")
        for line in job.lines:
            out.line(f"  {line}")
        out.line()
    for note in report.notes:
        out.line(note, style="dim")
    out.heading(f"Lambda log lines of {run.name}")
    if not report.lambda_lines:
        out.line("  none found", style="dim")
    for line in report.lambda_lines:
        stamp = line.timestamp.strftime("%H:%M:%S")
        out.line(
            f"  {stamp} {line.function} {line.level or '':<5} {line.message}",
            style="red" if line.level in ("ERROR", "CRITICAL") else None,
        )
    if run.failure:
        out.line()
        out.line(f"Failed at {run.failure.step}: {run.failure.error}: {run.failure.cause}", style="red")
