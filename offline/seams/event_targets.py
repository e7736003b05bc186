"""EventBridge rules deliver to Lambda and Step Functions targets. Gap: moto 5.2.5 raises
NotImplementedError for those target types, and S3 swallows the exception, so the rule (and every rule after
it) silently delivers nothing; schedule rules never fire.

- A matching event goes to each Lambda target as an asynchronous invoke (a worker thread; a handler error is
  retried up to the function's MaximumRetryAttempts, default 2, like Lambda's async retries, without the
  delays; then the event goes to the function's DeadLetterConfig SQS queue, with Lambda's RequestID /
  ErrorCode / ErrorMessage attributes; an event that cannot be handed to Lambda at all goes to the target's
  DeadLetterConfig queue with EventBridge's RULE_ARN / TARGET_ARN / ERROR_CODE / ERROR_MESSAGE) and starts
  an execution of each Step Functions target (a unique execution name). Other target types
  still go through moto's own code. Every delivery is recorded in `OfflineState.registry.async_invocations`
  (`registry.wait_for_async_invocations()` waits for them).
- Input shaping: `Input` (constant JSON), `InputPath` (JSONPath), `InputTransformer` (moto's template parser),
  for events from PutEvents and from S3 alike; `time` is the ISO string AWS sends.
- `fire_rule(rule_name_or_arn)` sends the "Scheduled Event" AWS sends for a schedule rule to its targets.

moto internals touched: `moto.events.models.Rule.send_to_targets` (replaced: Lambda/Step Functions targets
here, the rest passed to the original on a copy of the rule); `moto.events.utils.EventTemplateParser.parse`;
`moto.awslambda.utils.get_backend(...).invoke`; `moto.sqs.models.sqs_backends[...].send_message`
(dead letters);
`moto.stepfunctions.responses.get_backend(...).start_execution`.
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
import uuid
from typing import Any

from offline.seams import _patching
from offline.seams.state import AsyncInvocation

_state: Any = None
DEFAULT_ASYNC_RETRIES = 2


def _iso_time(event: dict[str, Any]) -> dict[str, Any]:
    event = json.loads(json.dumps(event, default=str))
    value = event.get("time")
    if isinstance(value, (int, float)):
        event["time"] = datetime.datetime.fromtimestamp(value, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What a target receives for this event, shaped by Input / InputPath / InputTransformer."""
    if target.get("Input") is not None:
        return json.loads(target["Input"])
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        matches = parse(target["InputPath"]).find(event)
        return matches[0].value if matches else None
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        # moto's parser reads ingestion-time, which events from S3 do not carry.
        return EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event={"ingestion-time": event.get("time"), **event},  # type: ignore[arg-type]
        )
    return event


def _is_ours(target: dict[str, Any]) -> bool:
    parts = target.get("Arn", "").split(":")
    return len(parts) > 2 and parts[2] in ("lambda", "states")


def send_dead_letter(queue_arn: str, body: str, attributes: dict[str, str]) -> None:
    """Put a message on an SQS queue of the offline AWS, as Lambda and EventBridge do with dead letters."""
    from moto.sqs.models import sqs_backends

    _, _, _, region, account_id, queue_name = queue_arn.split(":", 5)
    sqs_backends[account_id][region].send_message(
        queue_name,
        body,
        message_attributes={
            name: {"DataType": "String", "StringValue": value[:1000] or "-"}
            for name, value in attributes.items()
        },
    )


def _invoke_async(
    record: AsyncInvocation, arn: str, payload: Any, rule: Any = None, target: dict[str, Any] | None = None
) -> None:
    from moto.awslambda.utils import get_backend

    _, _, _, region, account_id, *_ = arn.split(":")
    backend = get_backend(account_id, region)
    body = payload if isinstance(payload, str) else json.dumps(payload)
    try:
        function = backend.get_function(arn)
        configs = getattr(function, "event_invoke_config", None) or []
        retries = DEFAULT_ASYNC_RETRIES
        for config in configs:
            retries = int(getattr(config, "config", {}).get("MaximumRetryAttempts", retries))
        for _attempt in range(retries + 1):
            response_headers: dict[str, str] = {}
            result = backend.invoke(arn, None, body, {"x-amz-invocation-type": "Event"}, response_headers)
            if "x-amz-function-error" not in response_headers:
                record.error = None
                return
            record.error = result.decode() if isinstance(result, bytes) else str(result)
        # Lambda's asynchronous retries are spent: the event goes to the function's dead-letter queue.
        queue = (getattr(function, "dead_letter_config", None) or {}).get("TargetArn")
        if queue:
            try:
                message = json.loads(record.error or "{}").get("errorMessage", record.error)
            except json.JSONDecodeError:
                message = record.error
            send_dead_letter(
                queue,
                body,
                {"RequestID": str(uuid.uuid4()), "ErrorCode": "200", "ErrorMessage": str(message)},
            )
            record.dead_letter_queue = queue
    except Exception as error:  # noqa: BLE001 - async delivery never fails the sender; the record keeps why
        record.error = f"{type(error).__name__}: {error}"
        # EventBridge could not hand the event to Lambda at all: the target's dead-letter queue gets it.
        queue = ((target or {}).get("DeadLetterConfig") or {}).get("Arn")
        if queue:
            send_dead_letter(
                queue,
                body,
                {
                    "RULE_ARN": getattr(rule, "arn", ""),
                    "TARGET_ARN": arn,
                    "ERROR_CODE": type(error).__name__,
                    "ERROR_MESSAGE": str(error),
                },
            )
            record.dead_letter_queue = queue
    finally:
        record.done.set()


def _start_execution(record: AsyncInvocation, arn: str, payload: Any) -> None:
    from moto.stepfunctions.responses import get_backend

    _, _, _, region, account_id, *_ = arn.split(":")
    try:
        execution_input = payload if isinstance(payload, str) else json.dumps(payload)
        get_backend(account_id, region).start_execution(
            arn, name=str(uuid.uuid4()), execution_input=execution_input
        )
    except Exception as error:  # noqa: BLE001 - delivery failures are recorded, never raised into the sender
        record.error = f"{type(error).__name__}: {error}"
    finally:
        record.done.set()


def deliver(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> AsyncInvocation:
    payload = target_input(target, _iso_time(event))
    arn = target["Arn"]
    record = AsyncInvocation(function_name=arn, source=rule.arn, event=payload)
    if _state is not None:
        with _state.registry.lock:
            _state.registry.async_invocations.append(record)
    if arn.split(":")[2] == "lambda":
        threading.Thread(
            target=_invoke_async,
            args=(record, arn, payload, rule, target),
            name=f"async-{rule.name}",
            daemon=True,
        ).start()
    else:
        _start_execution(record, arn, payload)
    return record


def _find_rule(rule_name_or_arn: str) -> Any:
    from moto.events.models import events_backends

    for account in events_backends.values():
        for backend in account.values():
            for bus in backend.event_buses.values():
                for rule in bus.rules.values():
                    if rule_name_or_arn in (rule.name, rule.arn):
                        return rule
    raise KeyError(f"no EventBridge rule named {rule_name_or_arn!r} in the offline AWS")


def fire_rule(rule_name_or_arn: str) -> list[AsyncInvocation]:
    """Send the scheduled event to the rule's targets now (schedule rules never fire by themselves
    offline)."""
    from moto.events.models import Rule

    rule = _find_rule(rule_name_or_arn)
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }
    others = [t for t in rule.targets if not _is_ours(t)]
    if others:
        shadow = copy.copy(rule)
        shadow.targets = others
        shadow.event_pattern = copy.copy(rule.event_pattern)
        shadow.event_pattern._pattern = None  # a schedule rule has no pattern: everything matches
        _patching.original(Rule, "send_to_targets")(shadow, event)
    return [deliver(rule, t, event) for t in rule.targets if _is_ours(t)]


def install(state: Any) -> None:
    global _state  # noqa: PLW0603 - one offline AWS per process
    from moto.events.models import Rule

    _state = state
    original = _patching.original(Rule, "send_to_targets")

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        # A schedule rule has no pattern; moto's empty pattern matches every event, AWS's rule matches none.
        if self.scheduled_expression and not self.event_pattern.get_pattern():
            return
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if _is_ours(t)]
        others = [t for t in self.targets if not _is_ours(t)]
        if others:
            shadow = copy.copy(self)
            shadow.targets = others
            original(shadow, original_event, transform_input)
        for target in ours:
            deliver(self, target, original_event)

    _patching.replace(Rule, "send_to_targets", send_to_targets)


def uninstall() -> None:
    """Let deliveries in flight finish first: after mock_aws stops their calls would leave for real AWS."""
    global _state  # noqa: PLW0603 - one offline AWS per process
    if _state is not None:
        _state.registry.wait_for_async_invocations(timeout=10.0)
    _state = None
