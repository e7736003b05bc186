"""Stack states the emulator cannot produce (a rolled-back update, a failed resource), via a Stubber."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber

from cicd import post_deploy_check

STACK = "mlops-staging"


class StubbedSession:
    """A boto3 session whose CloudFormation client answers from a Stubber (no other service is called)."""

    def __init__(self) -> None:
        self.cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        self.stubber = Stubber(self.cloudformation)

    def client(self, service: str, **_: Any) -> Any:
        assert service == "cloudformation", f"unexpected call to {service}"
        return self.cloudformation


def stack(status: str, reason: str | None = None, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "StackName": STACK,
        "StackStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()],
    }
    if reason:
        described["StackStatusReason"] = reason
    return {"Stacks": [described]}


def resource(logical_id: str, status: str, reason: str | None = None) -> dict[str, Any]:
    summary = {
        "LogicalResourceId": logical_id,
        "ResourceType": "AWS::Lambda::Function",
        "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
        "ResourceStatus": status,
    }
    if reason:
        summary["ResourceStatusReason"] = reason
    return summary


def test_a_rolled_back_update_and_its_failed_resource_are_reported() -> None:
    session = StubbedSession()
    session.stubber.add_response(
        "describe_stacks",
        stack("UPDATE_ROLLBACK_COMPLETE", "The following resource(s) failed to update: [NotifyFunction]."),
        {"StackName": STACK},
    )
    session.stubber.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                resource("StartRunFunction", "UPDATE_COMPLETE"),
                resource("NotifyFunction", "UPDATE_FAILED", "Resource handler returned: rate exceeded"),
            ]
        },
        {"StackName": STACK},
    )
    with session.stubber:
        report = post_deploy_check.check_stack(session, STACK, set())  # type: ignore[arg-type]
    assert not report.healthy
    assert report.problems == [
        "stack status is UPDATE_ROLLBACK_COMPLETE, not a completed deploy: "
        "The following resource(s) failed to update: [NotifyFunction].",
        "resource NotifyFunction (AWS::Lambda::Function) is UPDATE_FAILED: "
        "Resource handler returned: rate exceeded",
    ]
    assert report.checked == {"resources": 2}


def test_a_completed_update_with_healthy_resources_passes() -> None:
    session = StubbedSession()
    session.stubber.add_response(
        "describe_stacks", stack("UPDATE_COMPLETE", outputs={"Anything": "x"}), {"StackName": STACK}
    )
    session.stubber.add_response(
        "list_stack_resources",
        {"StackResourceSummaries": [resource("StartRunFunction", "UPDATE_COMPLETE")]},
        {"StackName": STACK},
    )
    with session.stubber:
        report = post_deploy_check.check_stack(session, STACK, {"Anything"})  # type: ignore[arg-type]
    assert report.healthy, report.problems
    assert report.summary() == f"ok: stack {STACK} is UPDATE_COMPLETE; checked resources: 1"


def test_only_unconditional_outputs_are_expected() -> None:
    outputs = {"Always": {"Value": "a"}, "WithNotebook": {"Condition": "CreateNotebook", "Value": "b"}}
    template = {"Outputs": outputs}
    assert post_deploy_check.expected_outputs(template) == {"Always"}
