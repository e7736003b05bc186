"""What the cost guard did: its sweep summaries (the sweepers' log lines) and its metrics.

Each sweep logs one "<kind> sweep finished" line with the summary (mlops_common.cost_guard.summary) and puts
its counts and hourly saving as metrics (namespace from the function's POWERTOOLS_METRICS_NAMESPACE).
The saving of a resource is its hourly price from the moment it was stopped or deleted until now (or the end
of the window): an estimate that assumes it stayed off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_cli.context import Aws
from mlops_cli.output import Printer, iso, seconds_text

SWEEPERS = {"notebooks": "NotebookSweeperFunctionName", "endpoints": "EndpointSweeperFunctionName"}
DONE_ACTIONS = ("stopped", "deleted")
WOULD_ACTIONS = ("would_stop", "would_delete", "reported")
_METRICS = ("Stopped", "Deleted", "EstimatedHourlySavingUSD")


@dataclass
class Sweep:
    kind: str
    started: datetime
    dry_run: bool
    examined: int
    counts: dict[str, int]
    hourly_saving: float
    hourly_saving_if_applied: float
    acted_on: list[dict[str, Any]]

    def saving_until(self, end: datetime) -> float:
        """USD not spent since this sweep, if what it stopped or deleted stayed off until `end`."""
        hours = max(0.0, (end - self.started).total_seconds() / 3600)
        return round(self.hourly_saving * hours, 2)

    def to_json(self, end: datetime) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "startedAt": iso(self.started),
            "dryRun": self.dry_run,
            "examined": self.examined,
            "counts": self.counts,
            "estimatedHourlySavingUsd": self.hourly_saving,
            "estimatedHourlySavingIfAppliedUsd": self.hourly_saving_if_applied,
            "estimatedSavingUsdSince": self.saving_until(end),
            "actedOn": self.acted_on,
        }


@dataclass
class CostGuardReport:
    since: datetime
    until: datetime
    sweeps: list[Sweep] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def last(self, kind: str) -> Sweep | None:
        mine = [s for s in self.sweeps if s.kind == kind]
        return mine[-1] if mine else None

    @property
    def estimated_saving(self) -> float:
        return round(sum(s.saving_until(self.until) for s in self.sweeps), 2)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for sweep in self.sweeps:
            for action, count in sweep.counts.items():
                out[action] = out.get(action, 0) + count
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "sweeps": [s.to_json(self.until) for s in self.sweeps],
            "lastSweeps": {
                kind: (s.to_json(self.until) if (s := self.last(kind)) else None) for kind in SWEEPERS
            },
            "totals": self.totals(),
            "estimatedSavingUsd": self.estimated_saving,
            "metrics": self.metrics,
            "notes": self.notes,
        }


def _parse_time(text: Any, fallback: datetime) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError:
        return fallback
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sweeps(aws: Aws, since: datetime, until: datetime, notes: list[str]) -> list[Sweep]:
    from botocore.exceptions import ClientError

    logs = aws.client("logs")
    found: list[Sweep] = []
    for kind, output in SWEEPERS.items():
        function = aws.outputs.get(output)
        if not function:
            notes.append(f"the stack has no {output} output: no {kind} sweeps to read")
            continue
        try:
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=f"/aws/lambda/{function}",
                startTime=int(since.timestamp() * 1000),
                endTime=int(until.timestamp() * 1000),
                filterPattern='"sweep finished"',
            )
            events = [e for page in pages for e in page["events"]]
        except ClientError as error:
            if "ResourceNotFound" not in str(error):
                raise
            continue  # never ran: Lambda creates the group on the first invocation
        for event in events:
            try:
                record = json.loads(event["message"])
            except json.JSONDecodeError:
                continue
            summary = record.get("summary") if isinstance(record, dict) else None
            if not isinstance(summary, dict) or summary.get("kind") != kind:
                continue
            stamp = datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC)
            found.append(
                Sweep(
                    kind=kind,
                    started=_parse_time(summary.get("started_at"), stamp),
                    dry_run=bool(summary.get("dry_run")),
                    examined=int(summary.get("examined") or 0),
                    counts={str(k): int(v) for k, v in (summary.get("counts") or {}).items()},
                    hourly_saving=float(summary.get("estimated_hourly_saving_usd") or 0.0),
                    hourly_saving_if_applied=float(
                        summary.get("estimated_hourly_saving_if_applied_usd") or 0.0
                    ),
                    acted_on=list(summary.get("acted_on") or []),
                )
            )
    return sorted(found, key=lambda s: s.started)


def metric_totals(aws: Aws, since: datetime, until: datetime) -> dict[str, float]:
    """Sum of each cost guard metric over the window, across the sweepers' dimension sets."""
    namespace = _metrics_namespace(aws)
    if not namespace:
        return {}
    cloudwatch = aws.client("cloudwatch")
    totals: dict[str, float] = {}
    # At most 1,440 datapoints a call: minutes up to a day, hours beyond. The window is widened to whole
    # periods (a sweep in the current, unfinished period counts too).
    period = 60 if until - since <= timedelta(days=1) else 3600
    start = datetime.fromtimestamp(since.timestamp() // period * period, tz=UTC)
    end = datetime.fromtimestamp((until.timestamp() // period + 1) * period, tz=UTC)
    for name in _METRICS:
        series = [
            m
            for page in cloudwatch.get_paginator("list_metrics").paginate(
                Namespace=namespace, MetricName=name
            )
            for m in page["Metrics"]
            if any(d["Name"] == "Sweep" for d in m.get("Dimensions", []))
        ]
        for metric in series:
            points = cloudwatch.get_metric_statistics(
                Namespace=namespace,
                MetricName=name,
                Dimensions=metric["Dimensions"],
                StartTime=start,
                EndTime=end,
                Period=period,
                Statistics=["Sum"],
            )["Datapoints"]
            totals[name] = round(totals.get(name, 0.0) + sum(p["Sum"] for p in points), 4)
    return totals


def _metrics_namespace(aws: Aws) -> str | None:
    function = aws.outputs.get(SWEEPERS["endpoints"]) or aws.outputs.get(SWEEPERS["notebooks"])
    if not function:
        return None
    configuration = aws.client("lambda").get_function_configuration(FunctionName=function)
    return (configuration.get("Environment") or {}).get("Variables", {}).get("POWERTOOLS_METRICS_NAMESPACE")


def cost_guard(aws: Aws, since: datetime, until: datetime) -> CostGuardReport:
    report = CostGuardReport(since, until)
    report.sweeps = sweeps(aws, since, until, report.notes)
    report.metrics = metric_totals(aws, since, until)
    return report


def print_cost_guard(out: Printer, report: CostGuardReport, now: datetime) -> None:
    """The short form `status` shows: the last sweep of each kind."""
    rows = []
    for kind in SWEEPERS:
        sweep = report.last(kind)
        if sweep is None:
            rows.append([kind, "-", "-", "-", "-"])
            continue
        rows.append(
            [
                kind + (" (dry run)" if sweep.dry_run else ""),
                f"{seconds_text((now - sweep.started).total_seconds())} ago",
                sweep.examined,
                _counts_text(sweep.counts),
                f"${sweep.hourly_saving:.2f}/h",
            ]
        )
    out.table(("sweep", "last run", "examined", "outcome", "saving"), rows, title="Cost guard (last 7 days)")
    out.line(f"  estimated saving: ${report.estimated_saving:.2f} (mlops savings for the details)")


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{action} {n}" for action, n in counts.items() if n) or "nothing to do"


def print_savings(out: Printer, report: CostGuardReport, now: datetime) -> None:
    out.pairs(
        [
            ("window", f"{iso(report.since)} .. {iso(report.until)}"),
            ("sweeps", len(report.sweeps)),
            ("outcomes", _counts_text(report.totals())),
            (
                "estimated saving",
                f"${report.estimated_saving:.2f} (if what was stopped or deleted stayed off)",
            ),
            ("metrics", ", ".join(f"{k}={v:g}" for k, v in report.metrics.items()) or None),
        ]
    )
    acted = [
        [
            iso(s.started),
            s.kind + (" (dry run)" if s.dry_run else ""),
            item.get("name"),
            item.get("action"),
            _price(item.get("hourly_usd")),
            item.get("reason"),
        ]
        for s in report.sweeps
        for item in s.acted_on
    ]
    out.line()
    out.table(("when", "sweep", "resource", "action", "price", "reason"), acted, title="Stopped or deleted",
              empty="nothing stopped or deleted in this window")  # fmt: skip
    for note in report.notes:
        out.line(note, style="dim")


def _price(hourly: Any) -> str:
    return f"${hourly:.3f}/h" if isinstance(hourly, int | float) else "-"
