"""Settings from the environment and the office-hours policy: good values parse, bad ones say what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops_common.cost_guard import pricing
from mlops_common.cost_guard.settings import (
    CostGuardConfigError,
    endpoint_settings,
    notebook_settings,
    parse_office_hours,
)

WEDNESDAY = datetime(2026, 11, 18, tzinfo=UTC)


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute)


def test_office_hours_in_a_named_zone() -> None:
    hours = parse_office_hours("Mon-Fri 08:00-19:00 Europe/Berlin")  # UTC+1 in November

    assert hours.contains(at(WEDNESDAY, 7, 30))  # 08:30 in Berlin
    assert not hours.contains(at(WEDNESDAY, 6, 59))
    assert not hours.contains(at(WEDNESDAY, 18, 0))  # 19:00 in Berlin: the end is exclusive
    assert not hours.contains(at(WEDNESDAY + timedelta(days=3), 10))  # Saturday


def test_a_day_range_may_wrap_over_the_week_end() -> None:
    hours = parse_office_hours("Sun-Thu 09:00-17:00")

    assert hours.contains(at(WEDNESDAY + timedelta(days=4), 10))  # Sunday
    assert not hours.contains(at(WEDNESDAY + timedelta(days=2), 10))  # Friday


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weekdays 9-5", "is not understood"),
        ("Mon-Fry 08:00-19:00", "days must be Mon..Sun"),
        ("Mon-Fri 19:00-08:00", "the end must be after the start"),
        ("Mon-Fri 08:00-25:00", "hour must be in"),
        ("Mon-Fri 08:00-19:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_office_hours_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(CostGuardConfigError, match=message):
        parse_office_hours(text)


def test_settings_from_the_environment() -> None:
    env = {
        "DRY_RUN": "TRUE",
        "ENVIRONMENT": "prod",
        "COST_GUARD_SCOPE": "team-a",
        "NOTEBOOK_IDLE_MINUTES": "45",
        "NOTEBOOK_FALLBACK_POLICY": "office-hours",
        "RESTORE_BUCKET": "models",
        "ENDPOINT_IDLE_HOURS": "48",
    }
    notebooks = notebook_settings(env)
    endpoints = endpoint_settings(env)

    assert notebooks.common.dry_run and notebooks.common.is_prod
    assert notebooks.idle == timedelta(minutes=45)
    assert notebooks.fallback == "office-hours"
    assert endpoints.idle_window == timedelta(hours=48)
    assert endpoints.grace == timedelta(hours=24)
    assert endpoints.common.scope == "team-a"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRY_RUN": "yes"}, "DRY_RUN must be true or false"),
        ({"NOTEBOOK_IDLE_MINUTES": "soon"}, "NOTEBOOK_IDLE_MINUTES must be a number"),
        ({"NOTEBOOK_IDLE_MINUTES": "0"}, "NOTEBOOK_IDLE_MINUTES must be above 0"),
        ({"NOTEBOOK_OFFICE_HOURS": "always"}, "NotebookOfficeHours 'always' is not understood"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(CostGuardConfigError, match=message):
        notebook_settings(env)


def test_endpoint_settings_need_the_restore_bucket() -> None:
    with pytest.raises(CostGuardConfigError, match="RESTORE_BUCKET must name the bucket"):
        endpoint_settings({})


def test_prices_come_from_the_one_table() -> None:
    assert pricing.hourly_price("us-east-1", "ml.m5.large") == 0.115
    assert pricing.hourly_price("eu-central-1", "ml.m5.large") == round(0.115 * 1.2, 4)
    assert pricing.hourly_price("us-east-1", "ml.unknown.large") is None
    assert pricing.hourly_price("mars-north-1", "ml.m5.large") is None
    assert pricing.fleet_hourly_price("us-east-1", [("ml.m5.large", 2), ("ml.t3.medium", 1)]) == 0.28
    assert pricing.fleet_hourly_price("us-east-1", [("ml.m5.large", 2), ("ml.unknown", 1)]) is None
    assert "us-east-1" in pricing.SUPPORTED_REGIONS
