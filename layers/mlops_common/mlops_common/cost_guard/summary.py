"""What one sweep did: per-resource outcomes, counts, the estimated hourly saving, and how it is reported."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from mlops_common.aws import error_code, publish_notification

Action = Literal["stopped", "deleted", "would_stop", "would_delete", "reported", "kept", "skipped", "error"]
# Outcomes that free (or, in dry run / prod report mode, would free) the resource's hourly cost.
ACTED: Final[frozenset[Action]] = frozenset({"stopped", "deleted", "would_stop", "would_delete", "reported"})
# SNS messages are capped at 256 KB; list at most this many resources by name.
_MAX_LISTED: Final = 200


@dataclass(frozen=True)
class Outcome:
    name: str
    action: Action
    reason: str
    hourly_usd: float | None = None


@dataclass
class SweepSummary:
    kind: Literal["notebooks", "endpoints"]
    dry_run: bool
    started_at: datetime
    examined: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, name: str, action: Action, reason: str, hourly_usd: float | None = None) -> Outcome:
        outcome = Outcome(name=name, action=action, reason=reason, hourly_usd=hourly_usd)
        self.outcomes.append(outcome)
        return outcome

    def with_action(self, *actions: Action) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.action in actions]

    def saving(self, *actions: Action) -> float:
        return round(sum(o.hourly_usd or 0.0 for o in self.with_action(*actions)), 4)

    @property
    def worth_notifying(self) -> bool:
        """Something was stopped/deleted, or would have been (dry run, prod report-only)."""
        return bool(self.with_action(*ACTED))

    def to_dict(self) -> dict[str, Any]:
        counts = Counter(outcome.action for outcome in self.outcomes)
        skipped_reasons = Counter(outcome.reason for outcome in self.with_action("skipped"))
        acted = self.with_action(*ACTED)
        return {
            "kind": self.kind,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat(),
            "examined": self.examined,
            "counts": dict(sorted(counts.items())),
            "estimated_hourly_saving_usd": self.saving("stopped", "deleted"),
            "estimated_hourly_saving_if_applied_usd": self.saving("would_stop", "would_delete", "reported"),
            "unpriced": sum(1 for outcome in acted if outcome.hourly_usd is None),
            "acted_on": [asdict(outcome) for outcome in acted[:_MAX_LISTED]],
            "acted_on_not_listed": max(0, len(acted) - _MAX_LISTED),
            "errors": [asdict(outcome) for outcome in self.with_action("error")[:_MAX_LISTED]],
            "skipped_by_reason": dict(skipped_reasons.most_common(50)),
            "skipped": [
                {"name": o.name, "reason": o.reason} for o in self.with_action("skipped")[:_MAX_LISTED]
            ],
        }


def error_text(error: Exception) -> str:
    """An AWS error as "Code: message", for a summary line a human reads."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        detail = response["Error"]
        return f"{detail.get('Code', 'Error')}: {detail.get('Message', error)}"
    return f"{type(error).__name__}: {error}"


# What AWS answers when a resource changed or vanished between the list and the action (StopNotebookInstance:
# "Status (Stopped) not in ([InService])"; DescribeEndpoint: "Could not find endpoint").
_CHANGED_MEANWHILE = frozenset({"ValidationException", "ResourceNotFound", "ResourceNotFoundException"})


def add_aws_error(summary: SweepSummary, name: str, step: str, error: Exception) -> Outcome:
    """Record a per-resource AWS error: a skip when someone changed the resource meanwhile, else an error."""
    if error_code(error) in _CHANGED_MEANWHILE:
        return summary.add(name, "skipped", f"changed by someone else meanwhile ({error_text(error)})")
    return summary.add(name, "error", f"{step} failed: {error_text(error)}")


def notify(summary: SweepSummary, topic_arn: str, stack_name: str, sns: Any = None) -> bool:
    """Send the summary to the notification topic when it is worth a human's attention; True if sent."""
    if not topic_arn or not summary.worth_notifying:
        return False
    data = summary.to_dict()
    counts = data["counts"]
    verb = {"notebooks": ("stopped", "would_stop"), "endpoints": ("deleted", "would_delete")}[summary.kind]
    done, would = counts.get(verb[0], 0), counts.get(verb[1], 0) + counts.get("reported", 0)
    prefix = "[dry run] " if summary.dry_run else ""
    subject = (
        f"{prefix}{stack_name} cost guard: {done} {summary.kind} {verb[0]}, {would} idle to review, "
        f"~${data['estimated_hourly_saving_usd'] + data['estimated_hourly_saving_if_applied_usd']:.2f}/h"
    )
    publish_notification(topic_arn, subject, data, sns=sns)
    return True


def record_metrics(summary: SweepSummary, metrics: Any) -> None:
    """Add the sweep's counts and saving to a Powertools Metrics object (flushed by @log_metrics)."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415 - only handlers need Powertools

    counts = Counter(outcome.action for outcome in summary.outcomes)
    metrics.add_dimension(name="Sweep", value=summary.kind)
    metrics.add_metric(name="Examined", unit=MetricUnit.Count, value=summary.examined)
    for action in (
        "stopped",
        "deleted",
        "would_stop",
        "would_delete",
        "reported",
        "kept",
        "skipped",
        "error",
    ):
        metrics.add_metric(name=action.title().replace("_", ""), unit=MetricUnit.Count, value=counts[action])
    metrics.add_metric(
        name="EstimatedHourlySavingUSD", unit=MetricUnit.NoUnit, value=summary.saving("stopped", "deleted")
    )


def report_sweep(
    summary: SweepSummary, *, logger: Any, metrics: Any, topic_arn: str, stack_name: str
) -> dict[str, Any]:
    """Everything a sweep reports, in one place: the structured log, the metrics, the SNS summary."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - keep module import light

    report = summary.to_dict()
    logger.info(f"{summary.kind} sweep finished", extra={"summary": report})
    record_metrics(summary, metrics)
    try:
        report["notified"] = notify(summary, topic_arn, stack_name)
    except (ClientError, BotoCoreError):
        # The sweep itself is done and logged; a lost e-mail must not make the scheduler retry it.
        logger.exception("sending the sweep summary to the notification topic failed")
        report["notified"] = False
    return report
