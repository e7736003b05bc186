"""Notebook sweep against moto, with heartbeat datapoints in moto's CloudWatch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
from botocore.stub import Stubber
from cost_guard_fakes import NOW, Aws, backend, fail_for, with_common

from mlops_common.cost_guard.notebooks import sweep_notebooks
from mlops_common.cost_guard.settings import parse_office_hours


def outcome(summary, name: str) -> tuple[str, str]:
    matches = [(o.action, o.reason) for o in summary.outcomes if o.name == name]
    assert len(matches) == 1, f"{name}: {matches}"
    return matches[0]


def test_recent_heartbeat_keeps_a_notebook_and_an_idle_one_is_stopped(aws: Aws, notebook_settings) -> None:
    aws.notebook("busy-analyst")
    aws.heartbeat("busy-analyst", idle=timedelta(minutes=5))
    aws.notebook("forgotten")
    aws.heartbeat("forgotten", idle=timedelta(minutes=90))

    summary = sweep_notebooks(aws.sagemaker, aws.cloudwatch, notebook_settings, NOW)

    action, reason = outcome(summary, "busy-analyst")
    assert action == "kept"
    assert reason.startswith("heartbeat: last user activity 7 min ago")  # 5 min idle, measured 2 min ago
    assert outcome(summary, "forgotten") == ("stopped", "heartbeat: no user activity for 92 min")
    assert aws.notebook_status("busy-analyst") == "InService"
    assert aws.notebook_status("forgotten") == "Stopped"
    assert summary.saving("stopped") == 0.05  # ml.t3.medium, us-east-1


def test_heartbeat_just_under_the_threshold_is_kept(aws: Aws, notebook_settings) -> None:
    aws.notebook("almost")
    aws.heartbeat("almost", idle=timedelta(minutes=57), ago=timedelta(minutes=2))

    summary = sweep_notebooks(aws.sagemaker, aws.cloudwatch, notebook_settings, NOW)

    assert outcome(summary, "almost")[0] == "kept"


def test_only_in_service_notebooks_are_listed(aws: Aws, notebook_settings) -> None:
    for status in ("Pending", "Stopping", "Stopped", "Failed", "Updating"):
        aws.notebook(f"nb-{status.lower()}", status=status, started=timedelta(days=2))
    filters: list[str | None] = []
    aws.sagemaker.meta.events.register(
        "provide-client-params.sagemaker.ListNotebookInstances",
        lambda params, **_: filters.append(params.get("StatusEquals")),
    )

    summary = sweep_notebooks(aws.sagemaker, aws.cloudwatch, notebook_settings, NOW)

    assert filters == ["InService"]  # filtered by SageMaker, not in Python
    assert summary.examined == 0
    assert summary.outcomes == []
    assert aws.notebook_status("nb-pending") == "Pending"


def test_a_notebook_stopped_by_someone_between_list_and_stop_is_a_skip(aws: Aws, notebook_settings) -> None:
    aws.notebook("stopped-meanwhile", started=timedelta(days=1))
    aws.notebook("idle-too", started=timedelta(days=1))
    # AWS's answer when the notebook is no longer InService (moto stops from any status).
    fail_for(
        aws.sagemaker,
        "stop_notebook_instance",
        NotebookInstanceName="stopped-meanwhile",
        message="Status (Stopped) not in ([InService]). Unable to transition to (Stopping)",
    )

    summary = sweep_notebooks(aws.sagemaker, aws.cloudwatch, notebook_settings, NOW)

    action, reason = outcome(summary, "stopped-meanwhile")
    assert action == "skipped"
    assert reason.startswith("changed by someone else meanwhile (ValidationException: Status (Stopped)")
    assert outcome(summary, "idle-too")[0] == "stopped"
    assert summary.to_dict()["errors"] == []


def test_opt_out_tag_and_scope(aws: Aws, notebook_settings) -> None:
    aws.notebook("keep-me", started=timedelta(days=1), tags={"cost-guard:keep-running": "true"})
    aws.notebook("mine", started=timedelta(days=1), tags={"cost-guard:scope": "ml-team"})
    aws.notebook("theirs", started=timedelta(days=1))

    summary = sweep_notebooks(
        aws.sagemaker, aws.cloudwatch, with_common(notebook_settings, scope="ml-team"), NOW
    )

    assert outcome(summary, "keep-me") == ("skipped", "opted out with tag cost-guard:keep-running=true")
    assert outcome(summary, "theirs") == (
        "skipped",
        "outside the sweep scope (needs tag cost-guard:scope=ml-team)",
    )
    assert outcome(summary, "mine")[0] == "stopped"


def test_without_heartbeat_the_max_uptime_policy_applies(aws: Aws, notebook_settings) -> None:
    aws.notebook("up-13h", started=timedelta(hours=13))
    aws.notebook("up-3h", started=timedelta(hours=3))
    aws.notebook("stale-heartbeat", started=timedelta(hours=3))
    # A heartbeat older than the lookback (the cron died) is no evidence of idleness.
    aws.heartbeat("stale-heartbeat", idle=timedelta(hours=2), ago=timedelta(hours=1))

    summary = sweep_notebooks(aws.sagemaker, aws.cloudwatch, notebook_settings, NOW)

    assert outcome(summary, "up-13h") == ("stopped", "no heartbeat; up 13.0 h, over the maximum uptime")
    assert outcome(summary, "up-3h")[0] == "kept"
    assert outcome(summary, "stale-heartbeat")[0] == "kept"


def test_without_heartbeat_the_office_hours_policy_applies(aws: Aws, notebook_settings) -> None:
    hours = parse_office_hours("Mon-Fri 08:00-19:00 +02:00")
    settings = replace(notebook_settings, fallback="office-hours", office_hours=hours)
    wednesday_noon = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # 14:00 at +02:00
    wednesday_evening = datetime(2026, 11, 18, 17, 30, tzinfo=UTC)  # 19:30 at +02:00
    aws.notebook("morning-start")
    backend().notebook_instances["morning-start"].last_modified_time = datetime(
        2026, 11, 18, 7, 0, tzinfo=UTC
    )

    noon = sweep_notebooks(aws.sagemaker, aws.cloudwatch, settings, wednesday_noon)
    assert outcome(noon, "morning-start") == (
        "kept",
        "no heartbeat; inside office hours (Mon-Fri 08:00-19:00 +02:00)",
    )
    assert aws.notebook_status("morning-start") == "InService"

    evening = sweep_notebooks(aws.sagemaker, aws.cloudwatch, settings, wednesday_evening)
    assert outcome(evening, "morning-start") == (
        "stopped",
        "no heartbeat; outside office hours (Mon-Fri 08:00-19:00 +02:00)",
    )


def test_a_just_started_notebook_is_not_stopped(aws: Aws, notebook_settings) -> None:
    aws.notebook("just-started", started=timedelta(minutes=10))
    aws.heartbeat("just-started", idle=timedelta(days=1))  # e.g. Jupyter reporting before the user opened it

    summary = sweep_notebooks(aws.sagemaker, aws.cloudwatch, notebook_settings, NOW)

    assert outcome(summary, "just-started") == ("kept", "started 10 min ago, less than the idle threshold")


def test_dry_run_changes_nothing(aws: Aws, notebook_settings) -> None:
    aws.notebook("idle", started=timedelta(days=1))
    aws.heartbeat("idle", idle=timedelta(hours=5))

    summary = sweep_notebooks(
        aws.sagemaker, aws.cloudwatch, with_common(notebook_settings, dry_run=True), NOW
    )

    assert outcome(summary, "idle")[0] == "would_stop"
    assert aws.notebook_status("idle") == "InService"
    assert summary.to_dict()["estimated_hourly_saving_if_applied_usd"] == 0.05


def test_more_than_one_page_of_notebooks_is_swept(aws: Aws, notebook_settings) -> None:
    for i in range(110):  # ListNotebookInstances pages at 100
        aws.notebook(f"nb-{i:03d}", started=timedelta(days=1))
        aws.heartbeat(f"nb-{i:03d}", idle=timedelta(minutes=5 if i == 109 else 120))

    summary = sweep_notebooks(aws.sagemaker, aws.cloudwatch, notebook_settings, NOW)

    assert summary.examined == 110
    assert len(summary.with_action("stopped")) == 109
    assert outcome(summary, "nb-109")[0] == "kept"


def test_without_heartbeat_data_nothing_is_stopped(aws: Aws, notebook_settings) -> None:
    # If CloudWatch cannot be read, the fallback policy must not stop notebooks that do have a heartbeat.
    aws.notebook("up-2-days", started=timedelta(days=2))
    broken = boto3.client("cloudwatch", region_name="us-east-1")
    stubber = Stubber(broken)
    stubber.add_client_error(
        "get_metric_data", service_error_code="InternalServiceError", http_status_code=500
    )

    with stubber:
        summary = sweep_notebooks(aws.sagemaker, broken, notebook_settings, NOW)

    assert outcome(summary, "up-2-days")[0] == "error"
    assert aws.notebook_status("up-2-days") == "InService"
