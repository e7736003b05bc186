"""Cost guard configuration: tag names, environment variables and the office-hours policy, validated once.

Tag keys are fixed (not parameters) because the IAM policies in template.yaml name them in
`aws:ResourceTag/...` condition keys, which CloudFormation cannot build from a parameter.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# `cost-guard:keep-running=true` on a notebook or endpoint: never stop or delete it.
OPT_OUT_TAG: Final = "cost-guard:keep-running"
# `cost-guard:allow-delete=true` on an endpoint: the prod environment may delete it when idle.
ALLOW_DELETE_IN_PROD_TAG: Final = "cost-guard:allow-delete"
# `cost-guard:scope=<value>`: with CostGuardScope=<value>, only resources carrying this tag are swept.
SCOPE_TAG: Final = "cost-guard:scope"

# Where the heartbeat (heartbeat.py on the notebook) publishes, and what the notebook sweeper reads.
HEARTBEAT_NAMESPACE: Final = "SageMakerMLOps/CostGuard"
HEARTBEAT_METRIC: Final = "NotebookIdleSeconds"
HEARTBEAT_DIMENSION: Final = "NotebookInstanceName"
# The heartbeat runs every 5 minutes; no datapoint in this lookback means "no heartbeat" (not "idle").
HEARTBEAT_LOOKBACK: Final = timedelta(minutes=20)

# Restore records of deleted endpoints: s3://<RESTORE_BUCKET>/<prefix><endpoint name>.json
RESTORE_RECORD_PREFIX: Final = "cost-guard/deleted-endpoints/"

FallbackPolicy = Literal["max-uptime", "office-hours", "keep"]
_FALLBACK_POLICIES: Final = ("max-uptime", "office-hours", "keep")
_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_OFFICE_HOURS = re.compile(
    r"^(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})"
    r"(?:\s+(?P<tz>\S+))?$",
    re.IGNORECASE,
)
_UTC_OFFSET = re.compile(r"^(?:UTC)?(?P<sign>[+-])(?P<h>\d{2}):(?P<m>\d{2})$")


class CostGuardConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable/parameter and what to set."""


@dataclass(frozen=True)
class OfficeHours:
    """Working days and hours in one time zone, e.g. "Mon-Fri 08:00-19:00 Europe/Berlin"."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    zone: tzinfo
    text: str

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return local.weekday() in self.days and self.start <= local.time() < self.end


def parse_office_hours(text: str) -> OfficeHours:
    """Parse "Mon-Fri 08:00-19:00 Europe/Berlin" (zone optional, default UTC; "+02:00" needs no tz data)."""
    match = _OFFICE_HOURS.match(text.strip())
    hint = 'write it like "Mon-Fri 08:00-19:00 Europe/Berlin" (days, 24h start-end, optional IANA zone)'
    if not match:
        raise CostGuardConfigError(f"NotebookOfficeHours {text!r} is not understood: {hint}")
    first, last = match["first"].lower(), (match["last"] or match["first"]).lower()
    if first not in _DAYS or last not in _DAYS:
        raise CostGuardConfigError(f"NotebookOfficeHours {text!r}: days must be Mon..Sun; {hint}")
    first_i, last_i = _DAYS.index(first), _DAYS.index(last)
    # Mon-Fri, or a range across the week end such as Sun-Thu.
    span = (last_i - first_i) % 7
    days = frozenset((first_i + offset) % 7 for offset in range(span + 1))
    try:
        start = time.fromisoformat(match["start"])
        end = time.fromisoformat(match["end"])
    except ValueError as error:
        raise CostGuardConfigError(f"NotebookOfficeHours {text!r}: {error}; {hint}") from error
    if end <= start:
        raise CostGuardConfigError(f"NotebookOfficeHours {text!r}: the end must be after the start; {hint}")
    return OfficeHours(days=days, start=start, end=end, zone=_zone(match["tz"] or "UTC", text), text=text)


def _zone(name: str, text: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    offset = _UTC_OFFSET.match(name)
    if offset:
        sign = -1 if offset["sign"] == "-" else 1
        return timezone(sign * timedelta(hours=int(offset["h"]), minutes=int(offset["m"])))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise CostGuardConfigError(
            f"NotebookOfficeHours {text!r}: unknown time zone {name!r}; use an IANA name such as "
            "Europe/Berlin, UTC, or a fixed offset such as +02:00"
        ) from error


@dataclass(frozen=True)
class CommonSettings:
    dry_run: bool
    environment: str
    scope: str  # "" = every resource in the account and region
    topic_arn: str
    region: str

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


@dataclass(frozen=True)
class NotebookSettings:
    common: CommonSettings
    idle: timedelta
    fallback: FallbackPolicy
    max_uptime: timedelta
    office_hours: OfficeHours | None


@dataclass(frozen=True)
class EndpointSettings:
    common: CommonSettings
    idle_window: timedelta
    grace: timedelta
    restore_bucket: str


def _flag(env: Mapping[str, str], name: str, default: str) -> bool:
    value = env.get(name, default).strip().lower()
    if value not in {"true", "false"}:
        raise CostGuardConfigError(f"{name} must be true or false, not {value!r}")
    return value == "true"


def _positive(env: Mapping[str, str], name: str, default: str, *, maximum: float) -> float:
    raw = env.get(name, default)
    try:
        value = float(raw)
    except ValueError as error:
        raise CostGuardConfigError(f"{name} must be a number, not {raw!r}") from error
    if not 0 < value <= maximum:
        raise CostGuardConfigError(f"{name} must be above 0 and at most {maximum:g}, not {raw!r}")
    return value


def common_settings(env: Mapping[str, str] | None = None) -> CommonSettings:
    env = os.environ if env is None else env
    return CommonSettings(
        dry_run=_flag(env, "DRY_RUN", "false"),
        environment=env.get("ENVIRONMENT", "dev"),
        scope=env.get("COST_GUARD_SCOPE", "").strip(),
        topic_arn=env.get("NOTIFICATION_TOPIC_ARN", ""),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


def notebook_settings(env: Mapping[str, str] | None = None) -> NotebookSettings:
    env = os.environ if env is None else env
    fallback = env.get("NOTEBOOK_FALLBACK_POLICY", "max-uptime")
    if fallback not in _FALLBACK_POLICIES:
        raise CostGuardConfigError(
            f"NOTEBOOK_FALLBACK_POLICY must be one of {', '.join(_FALLBACK_POLICIES)}, not {fallback!r}"
        )
    office_text = env.get("NOTEBOOK_OFFICE_HOURS", "Mon-Fri 08:00-19:00 UTC")
    return NotebookSettings(
        common=common_settings(env),
        idle=timedelta(minutes=_positive(env, "NOTEBOOK_IDLE_MINUTES", "60", maximum=7 * 24 * 60)),
        fallback=fallback,  # type: ignore[arg-type]
        max_uptime=timedelta(hours=_positive(env, "NOTEBOOK_MAX_UPTIME_HOURS", "12", maximum=24 * 30)),
        # Parsed even when unused so a typo fails at the first run, not the day someone switches policy.
        office_hours=parse_office_hours(office_text),
    )


def endpoint_settings(env: Mapping[str, str] | None = None) -> EndpointSettings:
    env = os.environ if env is None else env
    bucket = env.get("RESTORE_BUCKET", "")
    if not bucket:
        raise CostGuardConfigError("RESTORE_BUCKET must name the bucket that keeps endpoint restore records")
    return EndpointSettings(
        common=common_settings(env),
        # GetMetricData keeps 1-hour data for 455 days, but a window over 14 days says little about "idle".
        idle_window=timedelta(hours=_positive(env, "ENDPOINT_IDLE_HOURS", "24", maximum=14 * 24)),
        grace=timedelta(hours=_positive(env, "ENDPOINT_GRACE_HOURS", "24", maximum=90 * 24)),
        restore_bucket=bucket,
    )


def tag_is_true(tags: Mapping[str, str], key: str) -> bool:
    return tags.get(key, "").strip().lower() == "true"
