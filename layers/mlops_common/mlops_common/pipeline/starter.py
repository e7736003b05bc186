"""What start_run does with each event (docs/pipeline.md, "When a run starts"):

- an upload under a dataset's folders is recorded (pipeline/batching.py); the upload that opens a quiet
  period starts the dataset's batch waiter, which calls back here (``check_quiet_period``) and starts the run
  once the folders have been quiet for the dataset's quiet time;
- a marker (``_READY`` / ``manifest.json``) starts the run at once; ``{"force": true}`` in it forces a new
  run.

Starting a run lists the dataset once, names the run after its content (pipeline/snapshot.py), writes the
manifest and starts the execution. The same content seen again (a redelivered event, identical bytes uploaded
again, the same batch seen by a waiter after a marker) names an existing run and starts nothing: "identical to
run X".
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import S3_MISSING_CODES, error_code
from mlops_common.pipeline import batching, naming, snapshot, trigger
from mlops_common.pipeline.data_formats import CONFIG_FILE
from mlops_common.pipeline.run_config import defaults_from_env, quiet_seconds

STARTED = "started"
IDENTICAL = "identical"
RECORDED = "recorded"
WAITING = "waiting"
IGNORED = "ignored"
EMPTY = "empty"
SUPERSEDED = "superseded"
# How a run was started (execution input "trigger").
BY_MARKER = "marker"
BY_QUIET_PERIOD = "quiet-period"
# A marker's body is read for {"force": true}; anything longer is not such a body.
_MARKER_BODY_MAX = 64 * 1024


@dataclass(frozen=True)
class Settings:
    input_bucket: str
    output_bucket: str
    pipeline_arn: str
    waiter_arn: str
    table: str
    defaults_text: str | None

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> Settings:
        return cls(
            input_bucket=env["INPUT_BUCKET"],
            output_bucket=env["OUTPUT_BUCKET"],
            pipeline_arn=env["PIPELINE_STATE_MACHINE_ARN"],
            waiter_arn=env["BATCH_WAITER_STATE_MACHINE_ARN"],
            table=env["COORDINATION_TABLE"],
            defaults_text=env.get("PIPELINE_DEFAULTS"),
        )

    @property
    def default_quiet_seconds(self) -> int:
        return quiet_seconds(defaults_from_env(self.defaults_text), None)[0]


@dataclass(frozen=True)
class Clients:
    s3: Any
    sfn: Any
    ddb: Any


def resolve_key(s3: Any, event: trigger.ObjectEvent) -> str | None:
    """The object's real key: as delivered, or URL-decoded when only that exists (None: it is gone)."""
    candidates = trigger.key_candidates(event.key)
    if len(candidates) == 1:
        return candidates[0]
    for key in candidates:
        try:
            s3.head_object(Bucket=event.bucket, Key=key)
            return key
        except ClientError as error:
            if error_code(error) not in {*S3_MISSING_CODES, "403"}:
                raise
    return None


def execution_arn(state_machine_arn: str, name: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def execution_status(sfn: Any, state_machine_arn: str, name: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, ... of the named execution, or None when there is none."""
    try:
        described = sfn.describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as error:
        if error_code(error) == "ExecutionDoesNotExist":
            return None
        raise
    return str(described["status"])


def _read_small(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
    request: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{_MARKER_BODY_MAX - 1}"}
    if version_id:
        request["VersionId"] = version_id
    try:
        return bytes(s3.get_object(**request)["Body"].read())
    except ClientError as error:
        if error_code(error) in {*S3_MISSING_CODES, "NoSuchVersion", "InvalidRange"}:
            return None
        raise


def force_token(s3: Any, event: trigger.ObjectEvent) -> str | None:
    """The marker's version when its body is {"force": true} (a new run even for identical data), else None.
    The token is the marker's version, so a redelivered forced marker still starts only one run."""
    body = _read_small(s3, event.bucket, event.key, event.version_id) if event.size != 0 else None
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(parsed, dict) or parsed.get("force") is not True:
        return None
    return event.version_id or f"{event.sequencer or ''}/{event.etag or ''}"


def start_run(
    dataset: str,
    *,
    trigger_kind: str,
    force: str | None,
    clients: Clients,
    settings: Settings,
    entries: list[snapshot.Entry] | None = None,
) -> dict[str, Any]:
    """List the dataset once (or take the caller's listing), name the run after its content, write its
    manifest, start it (or find it)."""
    if entries is None:
        entries = snapshot.list_dataset(clients.s3, settings.input_bucket, dataset)
    data_files = sum(1 for e in entries if e.split == "training")
    if not data_files and trigger_kind == BY_QUIET_PERIOD:
        # Only a split or pipeline.json so far: not a dataset yet. A marker still starts a run, whose
        # PrepareRun failure tells the user what is missing.
        return {"outcome": EMPTY, "dataset": dataset, "reason": f"training/{dataset}/ holds no data files"}
    defaults = snapshot.defaults_identity(settings.defaults_text)
    name = naming.execution_name(dataset, snapshot.identity(entries, defaults, force))
    status = execution_status(clients.sfn, settings.pipeline_arn, name)
    if status is not None:
        return _identical(dataset, name, status)
    manifest = snapshot.build_manifest(
        run_id=name,
        dataset=dataset,
        bucket=settings.input_bucket,
        entries=entries,
        content_identity=snapshot.identity(entries, defaults, force),
        defaults=defaults,
        trigger=trigger_kind,
        force=force is not None,
    )
    uri = snapshot.write_manifest(clients.s3, settings.output_bucket, manifest)
    # Deterministic input: StartExecution of a running execution with the same name and input is a no-op.
    payload = {
        "runId": name,
        "dataset": dataset,
        "bucket": settings.input_bucket,
        "manifest": uri,
        "trigger": trigger_kind,
        "force": force is not None,
    }
    try:
        arn = clients.sfn.start_execution(
            stateMachineArn=settings.pipeline_arn, name=name, input=json.dumps(payload, sort_keys=True)
        )["executionArn"]
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":  # lost a race with an identical start
            return _identical(dataset, name, "RUNNING")
        raise
    return {
        "outcome": STARTED,
        "dataset": dataset,
        "executionName": name,
        "executionArn": arn,
        "manifest": uri,
        "files": len([e for e in entries if e.split != snapshot.CONFIG]),
        "trigger": trigger_kind,
        "force": force is not None,
    }


def _identical(dataset: str, name: str, status: str) -> dict[str, Any]:
    return {
        "outcome": IDENTICAL,
        "dataset": dataset,
        "executionName": name,
        "status": status,
        "reason": f"identical to run {name} ({status}): nothing new to train",
    }


def _start_waiter(dataset: str, waiter: str, *, clients: Clients, settings: Settings) -> dict[str, Any]:
    config = _read_small(clients.s3, settings.input_bucket, f"training/{dataset}/{CONFIG_FILE}")
    quiet, problem = quiet_seconds(defaults_from_env(settings.defaults_text), config)
    payload = {"dataset": dataset, "quietSeconds": quiet, "waitSeconds": quiet}
    try:
        clients.sfn.start_execution(
            stateMachineArn=settings.waiter_arn, name=waiter, input=json.dumps(payload, sort_keys=True)
        )
    except ClientError:
        batching.release(clients.ddb, settings.table, dataset, waiter)  # the retried event claims it again
        raise
    result = {"outcome": WAITING, "dataset": dataset, "waiter": waiter, "quietSeconds": quiet}
    if problem:
        result["configProblem"] = problem
    return result


def upload_time_ms(event: trigger.ObjectEvent, now_ms: int) -> int:
    """When S3 created the object (the event's time), else now. EventBridge's time has whole seconds: the end
    of that second, so the quiet time is never shorter than configured."""
    if not event.event_time:
        return now_ms
    try:
        parsed = datetime.fromisoformat(event.event_time.replace("Z", "+00:00"))
    except ValueError:
        return now_ms
    whole_seconds = "." not in event.event_time  # "2026-11-22T16:00:00Z", no fraction
    return int(parsed.timestamp() * 1000) + (999 if whole_seconds else 0)


def record_upload(
    dataset: str, *, uploaded_ms: int, clients: Clients, settings: Settings, now_ms: int, token: str
) -> dict[str, Any]:
    """Count the upload; the first one of a quiet period (or one finding a dead waiter) starts the waiter."""
    candidate = naming.waiter_name(dataset, token)
    record = batching.record_upload(
        clients.ddb, settings.table, dataset, uploaded_ms=uploaded_ms, candidate=candidate, now_ms=now_ms
    )
    if not record.claimed:
        if not batching.is_stale(record, now_ms, settings.default_quiet_seconds):
            return {"outcome": RECORDED, "dataset": dataset, "waiter": record.waiter}
        if execution_status(clients.sfn, settings.waiter_arn, record.waiter) == "RUNNING":
            return {"outcome": RECORDED, "dataset": dataset, "waiter": record.waiter}
        taken = batching.take_over(
            clients.ddb,
            settings.table,
            dataset,
            stale_waiter=record.waiter,
            candidate=candidate,
            now_ms=now_ms,
        )
        if not taken:
            return {"outcome": RECORDED, "dataset": dataset, "waiter": record.waiter}
    return _start_waiter(dataset, candidate, clients=clients, settings=settings)


def handle_object_event(
    event: trigger.ObjectEvent, *, clients: Clients, settings: Settings, now_ms: int, token: str
) -> dict[str, Any]:
    """{outcome: started|identical|waiting|recorded|ignored, reason, key, ...} for one S3 object event."""
    if event.bucket != settings.input_bucket:
        return {
            "outcome": IGNORED,
            "reason": f"bucket {event.bucket} is not the input bucket",
            "key": event.key,
        }
    key = resolve_key(clients.s3, event)
    if key is None:
        return {"outcome": IGNORED, "reason": "the object no longer exists", "key": event.key}
    event = trigger.ObjectEvent(
        event.bucket, key, event.size, event.etag, event.version_id, event.sequencer, event.event_time
    )
    decision = trigger.classify(key, event.size)
    if decision.action == trigger.IGNORE or decision.dataset is None:
        return {"outcome": IGNORED, "reason": decision.reason, "key": key}
    if decision.action == trigger.MARKER:
        result = start_run(
            decision.dataset,
            trigger_kind=BY_MARKER,
            force=force_token(clients.s3, event),
            clients=clients,
            settings=settings,
        )
    else:
        result = record_upload(
            decision.dataset,
            uploaded_ms=upload_time_ms(event, now_ms),
            clients=clients,
            settings=settings,
            now_ms=now_ms,
            token=token,
        )
    return {"key": key, "reason": decision.reason, **result}


def check_quiet_period(
    request: dict[str, Any], *, clients: Clients, settings: Settings, now_ms: int
) -> dict[str, Any]:
    """The batch waiter's step: wait more, or start the run and end the quiet period. Returns the waiter's
    next state: {dataset, quietSeconds, waitSeconds, outcome, run?}."""
    dataset, waiter = request.get("dataset"), request.get("waiter")
    quiet = request.get("quietSeconds")
    if not isinstance(dataset, str) or not isinstance(waiter, str) or not isinstance(quiet, int):
        raise ValueError(
            "a quiet-period check needs dataset, waiter (the waiter's execution name) and quietSeconds; "
            f"got {sorted(request)}"
        )
    state = {"dataset": dataset, "quietSeconds": quiet, "waitSeconds": quiet}
    check = batching.check_quiet(
        clients.ddb, settings.table, dataset, waiter=waiter, quiet_seconds=quiet, now_ms=now_ms
    )
    if check.outcome == batching.WAITING:
        return {**state, "outcome": WAITING, "waitSeconds": check.wait_seconds}
    if check.outcome == batching.SUPERSEDED:
        return {**state, "outcome": SUPERSEDED}
    # Quiet by the recorded events; the bucket may know better when their delivery lags (a backlog).
    listed = snapshot.latest_versions(clients.s3, settings.input_bucket, dataset)
    newest = snapshot.newest_upload_ms(listed)
    if newest is not None and (remaining_ms := quiet * 1000 - (now_ms - newest)) > 0:
        return {**state, "outcome": WAITING, "waitSeconds": max(1, math.ceil(remaining_ms / 1000))}
    run = start_run(
        dataset,
        trigger_kind=BY_QUIET_PERIOD,
        force=None,
        clients=clients,
        settings=settings,
        entries=snapshot.dataset_entries(dataset, listed),  # the listing just read: the bytes that were quiet
    )
    closed = batching.close_quiet_period(
        clients.ddb, settings.table, dataset, waiter=waiter, uploads_seen=check.uploads
    )
    if not closed:
        # Uploads arrived while the run started: wait for them to settle; the next run covers them.
        return {**state, "outcome": WAITING, "run": run}
    return {**state, "outcome": run["outcome"], "run": run}
