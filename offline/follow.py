"""Follow Step Functions executions as they run: one line per state as it finishes, with its duration."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from offline.embedded import TERMINAL_EXECUTION_STATES, list_executions

# History events that carry an error and a cause, and the key of their details.
_FAILURE_DETAILS = {
    "TaskFailed": "taskFailedEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
}
_EXECUTION_END = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}


@dataclass(frozen=True)
class Failure:
    state: str
    error: str
    cause: str

    def render(self) -> str:
        return f"{self.state}: {self.error}: {self.cause}"


def readable_cause(cause: str) -> str:
    """A Lambda error's cause is JSON ({errorType, errorMessage, stackTrace}): keep the message."""
    try:
        parsed = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        return cause
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return f"{parsed.get('errorType', 'Error')}: {parsed['errorMessage']}"
    return cause


@dataclass
class ExecutionFollower:
    """Reads each execution's history and reports every state that has finished since the last poll.

    A state visited again (a polling loop) is reported once; when its execution ends, one more line says how
    often it ran and for how long in total.
    """

    sfn: Any
    seen: dict[str, int] = field(default_factory=dict)  # execution arn -> last event id reported
    entered: dict[tuple[str, str], datetime] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)  # execution arn -> last state entered
    visits: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=dict)

    def poll(self, execution_arn: str, label: str) -> list[str]:
        lines: list[str] = []
        last = self.seen.get(execution_arn, 0)
        for event in self._history(execution_arn):
            if event["id"] <= last:
                continue
            self.seen[execution_arn] = event["id"]
            kind = event["type"]
            if kind.endswith("StateEntered"):
                name = event["stateEnteredEventDetails"]["name"]
                self.entered[(execution_arn, name)] = event["timestamp"]
                self.current[execution_arn] = name
            elif kind.endswith("StateExited"):
                name = event["stateExitedEventDetails"]["name"]
                seconds = self._since_entered(execution_arn, name, event["timestamp"])
                durations = self.visits.setdefault((execution_arn, name), [])
                durations.append(seconds)
                if len(durations) == 1:
                    lines.append(f"  ok   {label:<22} {name:<34} {seconds:6.2f}s")
            if kind in _FAILURE_DETAILS:
                details = event.get(_FAILURE_DETAILS[kind], {})
                state = self.current.get(execution_arn, "(execution)")
                failure = Failure(state, details.get("error", kind), readable_cause(details.get("cause", "")))
                self.failures.setdefault(execution_arn, []).append(failure)
                if kind not in _EXECUTION_END:
                    seconds = self._since_entered(execution_arn, state, event["timestamp"])
                    lines.append(f"  FAIL {label:<22} {state:<34} {seconds:6.2f}s  {failure.error}")
            if kind in _EXECUTION_END:
                lines.extend(self._loops(execution_arn, label))
        return lines

    def first_failure(self, execution_arn: str) -> Failure | None:
        """The earliest failure in the execution: the root cause, before any Catch turned it into another."""
        failures = self.failures.get(execution_arn, [])
        return failures[0] if failures else None

    def final_failure(self, execution_arn: str) -> Failure | None:
        failures = self.failures.get(execution_arn, [])
        return failures[-1] if failures else None

    def _since_entered(self, execution_arn: str, state: str, now: datetime) -> float:
        return (now - self.entered.get((execution_arn, state), now)).total_seconds()

    def _loops(self, execution_arn: str, label: str) -> list[str]:
        return [
            f"       {label:<22} {name:<34} {sum(durations):6.2f}s  (ran {len(durations)} times in all)"
            for (arn, name), durations in self.visits.items()
            if arn == execution_arn and len(durations) > 1
        ]

    def _history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(page["events"])
        return sorted(events, key=lambda e: e["id"])


def follow_executions(  # noqa: PLR0917 - read at the call site with keywords
    sfn: Any,
    state_machines: dict[str, str],
    since: float,
    until_done: str,
    timeout: float,
    emit: Callable[[str], None] = print,
    settle: float = 1.0,
) -> tuple[dict[str, Any], ExecutionFollower]:
    """Print the states of every execution of `state_machines` (label -> arn) started since `since`.

    Stops when the first execution of `until_done` (a label) and every execution it led to have finished, and
    returns that execution with the follower (which knows each execution's failures).
    """
    follower = ExecutionFollower(sfn)
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while True:
        running = False
        main: dict[str, Any] | None = None
        for label, arn in state_machines.items():
            for execution in list_executions(sfn, arn, since):
                for line in follower.poll(execution["executionArn"], label):
                    emit(line)
                running = running or execution["status"] not in TERMINAL_EXECUTION_STATES
                if label == until_done and main is None:
                    main = execution
        if main is not None and not running:
            # An execution the run led to may start a moment later (an EventBridge rule on its events).
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return sfn.describe_execution(executionArn=main["executionArn"]), follower
        else:
            quiet_since = None
        if time.monotonic() > deadline:
            where = "no execution started" if main is None else f"{main['name']} still {main['status']}"
            raise TimeoutError(f"{until_done}: {where} after {timeout:.0f}s")
        time.sleep(0.2)


def parse_output(execution: dict[str, Any]) -> Any:
    try:
        return json.loads(execution.get("output") or "null")
    except json.JSONDecodeError:
        return execution.get("output")


def find_key(value: Any, names: Iterable[str]) -> Any:
    """The first value under any of `names`, searching nested dicts/lists depth-first (execution outputs)."""
    wanted = set(names)
    if isinstance(value, dict):
        for key, item in value.items():
            if key in wanted and item not in (None, "", [], {}):
                return item
        for item in value.values():
            found = find_key(item, wanted)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = find_key(item, wanted)
            if found is not None:
                return found
    return None
