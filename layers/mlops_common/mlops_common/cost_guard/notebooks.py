"""Notebook instances: find the InService ones, decide which are idle, stop them (or say why not)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops_common.cost_guard.metrics import MetricQuery, get_metric_values
from mlops_common.cost_guard.pricing import hourly_price
from mlops_common.cost_guard.settings import (
    HEARTBEAT_DIMENSION,
    HEARTBEAT_LOOKBACK,
    HEARTBEAT_METRIC,
    HEARTBEAT_NAMESPACE,
    NotebookSettings,
)
from mlops_common.cost_guard.summary import SweepSummary, add_aws_error, error_text
from mlops_common.cost_guard.tags import resource_tags, tag_exclusion


@dataclass(frozen=True)
class Heartbeat:
    """The newest heartbeat datapoint: idle seconds the notebook reported, and when."""

    idle_seconds: float
    at: datetime

    def idle_for(self, now: datetime) -> timedelta:
        # The value was measured at `at`; the notebook has been idle at most that much longer since.
        return timedelta(seconds=self.idle_seconds) + max(now - self.at, timedelta(0))


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


def decide_notebook(
    last_started: datetime, heartbeat: Heartbeat | None, settings: NotebookSettings, now: datetime
) -> Decision:
    """Stop or keep one InService notebook. Pure: every input is a value."""
    uptime = now - last_started
    if uptime < settings.idle:
        return Decision(False, f"started {_minutes(uptime)} ago, less than the idle threshold")
    if heartbeat is not None:
        idle = heartbeat.idle_for(now)
        if idle >= settings.idle:
            return Decision(True, f"heartbeat: no user activity for {_minutes(idle)}")
        return Decision(False, f"heartbeat: last user activity {_minutes(idle)} ago")
    return _fallback_decision(uptime, settings, now)


def _fallback_decision(uptime: timedelta, settings: NotebookSettings, now: datetime) -> Decision:
    """For notebooks without a heartbeat (lifecycle configuration not attached, or broken)."""
    if settings.fallback == "max-uptime":
        if uptime >= settings.max_uptime:
            return Decision(
                True, f"no heartbeat; up {uptime.total_seconds() / 3600:.1f} h, over the maximum uptime"
            )
        return Decision(False, f"no heartbeat; up {uptime.total_seconds() / 3600:.1f} h, within the maximum")
    if settings.fallback == "office-hours" and settings.office_hours is not None:
        if settings.office_hours.contains(now):
            return Decision(False, f"no heartbeat; inside office hours ({settings.office_hours.text})")
        return Decision(True, f"no heartbeat; outside office hours ({settings.office_hours.text})")
    return Decision(False, "no heartbeat and the fallback policy is keep")


def heartbeat_query(name: str) -> MetricQuery:
    return MetricQuery(
        key=name,
        namespace=HEARTBEAT_NAMESPACE,
        metric_name=HEARTBEAT_METRIC,
        dimensions=((HEARTBEAT_DIMENSION, name),),
        stat="Minimum",
        period_seconds=60,
    )


def read_heartbeats(cloudwatch: Any, names: list[str], now: datetime) -> dict[str, Heartbeat | None]:
    """The newest heartbeat per notebook within the lookback; ceil(len(names) / 500) GetMetricData calls."""
    values = get_metric_values(
        cloudwatch, [heartbeat_query(name) for name in names], now - HEARTBEAT_LOOKBACK, now
    )
    return {
        name: Heartbeat(idle_seconds=points[0][1], at=points[0][0]) if points else None
        for name, points in values.items()
    }


def _in_service(sagemaker: Any, summary: SweepSummary) -> list[dict[str, Any]]:
    """InService notebooks (filtered by SageMaker: a stopped or failed notebook costs no instance hours)."""
    candidates: list[dict[str, Any]] = []
    try:
        for page in sagemaker.get_paginator("list_notebook_instances").paginate(StatusEquals="InService"):
            for notebook in page.get("NotebookInstances", []):
                summary.examined += 1
                candidates.append(notebook)
    except (ClientError, BotoCoreError) as error:
        # Sweep what was listed; the next run sees the rest.
        summary.add("(list notebook instances)", "error", f"listing stopped early: {error_text(error)}")
    return candidates


def _not_excluded(
    sagemaker: Any, candidates: list[dict[str, Any]], scope: str, summary: SweepSummary
) -> list[dict[str, Any]]:
    """Candidates whose tags neither opt them out nor put them outside the scope."""
    eligible: list[dict[str, Any]] = []
    for notebook in candidates:
        name = notebook["NotebookInstanceName"]
        try:
            excluded = tag_exclusion(resource_tags(sagemaker, notebook["NotebookInstanceArn"]), scope)
        except (ClientError, BotoCoreError) as error:
            add_aws_error(summary, name, "reading tags", error)
            continue
        if excluded:
            summary.add(name, "skipped", excluded)
        else:
            eligible.append(notebook)
    return eligible


def sweep_notebooks(
    sagemaker: Any, cloudwatch: Any, settings: NotebookSettings, now: datetime
) -> SweepSummary:
    """Examine every notebook instance in the account and region; stop the idle ones."""
    common = settings.common
    summary = SweepSummary(kind="notebooks", dry_run=common.dry_run, started_at=now)
    eligible = _not_excluded(sagemaker, _in_service(sagemaker, summary), common.scope, summary)
    if not eligible:
        return summary
    try:
        heartbeats = read_heartbeats(cloudwatch, [nb["NotebookInstanceName"] for nb in eligible], now)
    except (ClientError, BotoCoreError) as error:
        # Without heartbeats the fallback policy would decide for notebooks that do have one: stop nothing.
        for notebook in eligible:
            summary.add(
                notebook["NotebookInstanceName"], "error", f"heartbeats unreadable: {error_text(error)}"
            )
        return summary
    for notebook in eligible:
        name = notebook["NotebookInstanceName"]
        # LastModifiedTime changes on every status change, so for an InService notebook it is its last start.
        last_started = notebook.get("LastModifiedTime") or notebook["CreationTime"]
        decision = decide_notebook(last_started, heartbeats.get(name), settings, now)
        price = hourly_price(common.region, notebook.get("InstanceType", ""))
        if not decision.stop:
            summary.add(name, "kept", decision.reason)
        elif common.dry_run:
            summary.add(name, "would_stop", decision.reason, price)
        else:
            _stop(sagemaker, summary, name, decision.reason, price)
    return summary


def _stop(sagemaker: Any, summary: SweepSummary, name: str, reason: str, price: float | None) -> None:
    try:
        sagemaker.stop_notebook_instance(NotebookInstanceName=name)
    except (ClientError, BotoCoreError) as error:
        add_aws_error(summary, name, "stop", error)
        return
    summary.add(name, "stopped", reason, price)
