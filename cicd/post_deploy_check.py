"""Post-deploy check of a deployed stack (`make smoke STACK=...`): is it healthy enough to promote?

The CI/CD workflow runs it after each deploy (.github/workflows/deploy.yml); it works against any deployed
stack, the offline one too: `AWS_ENDPOINT_URL=http://127.0.0.1:4566 make smoke STACK=mlops-local`. It reads
with the caller's credentials: in CI the stage's deploy role, whose `PostDeployCheck*` statements in
cicd/bootstrap.yaml allow exactly the calls made here (tests/e2e/test_post_deploy_check.py checks that).

Checked: the stack's status, every unconditional output of the template, every resource's status, and the
resources behind the outputs: buckets exist with versioning on, state machines are ACTIVE, the topic exists.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
# The template that was deployed (sam build output), else the source one; only its Outputs section is read.
DEFAULT_TEMPLATES = (ROOT / ".aws-sam" / "build" / "template.yaml", ROOT / "template.yaml")

# Statuses of a stack whose last operation succeeded. *_ROLLBACK_COMPLETE means the last deploy failed.
HEALTHY_STACK_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
HEALTHY_RESOURCE_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})

_CLIENT_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"})


class StackNotFound(LookupError):
    """The stack does not exist in this account and region."""


@dataclass
class CheckReport:
    stack: str
    status: str = ""
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return bool(self.status) and not self.problems

    def count(self, what: str) -> None:
        self.checked[what] = self.checked.get(what, 0) + 1

    def summary(self) -> str:
        if self.healthy:
            counts = ", ".join(f"{what}: {n}" for what, n in sorted(self.checked.items()))
            return f"ok: stack {self.stack} is {self.status}; checked {counts}"
        lines = [
            f"FAILED: stack {self.stack} ({self.status or 'no status'}): {len(self.problems)} problem(s)"
        ]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def expected_outputs(template: dict[str, Any]) -> set[str]:
    """The outputs every deployment has: those without a Condition (optional parts may lack theirs)."""
    return {name for name, output in template.get("Outputs", {}).items() if "Condition" not in output}


def load_template(path: Path) -> dict[str, Any]:
    return yaml_parse(path.read_text(encoding="utf-8"))


def _describe_stack(cloudformation: Any, stack: str) -> dict[str, Any]:
    try:
        [found] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise StackNotFound(stack) from error
        raise
    return found


def _failed_resources(cloudformation: Any, stack: str, report: CheckReport) -> Iterable[str]:
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            report.count("resources")
            if resource["ResourceStatus"] not in HEALTHY_RESOURCE_STATUSES:
                reason = resource.get("ResourceStatusReason") or "no reason given"
                yield (
                    f"resource {resource['LogicalResourceId']} ({resource['ResourceType']}) is "
                    f"{resource['ResourceStatus']}: {reason}"
                )


def _bucket_problem(s3: Any, bucket: str) -> str | None:
    try:
        s3.head_bucket(Bucket=bucket)
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    except ClientError as error:
        return f"bucket {bucket}: {error.response.get('Error', {}).get('Code', error)}"
    if versioning != "Enabled":
        return f"bucket {bucket}: versioning is {versioning or 'off'}, the template enables it"
    return None


def _state_machine_problem(stepfunctions: Any, arn: str) -> str | None:
    try:
        status = stepfunctions.describe_state_machine(stateMachineArn=arn).get("status")
    except ClientError as error:
        return f"state machine {arn}: {error.response.get('Error', {}).get('Code', error)}"
    return None if status == "ACTIVE" else f"state machine {arn} is {status}"


def _topic_problem(sns: Any, arn: str) -> str | None:
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        return f"topic {arn}: {error.response.get('Error', {}).get('Code', error)}"
    return None


def check_stack(session: boto3.Session, stack: str, expected: set[str]) -> CheckReport:
    """Everything this module checks, as one report (raises StackNotFound when there is no such stack)."""
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, config=_CLIENT_CONFIG)  # type: ignore[call-overload]
        return clients[service]

    cloudformation = client("cloudformation")
    report = CheckReport(stack=stack)
    described = _describe_stack(cloudformation, stack)
    report.status = described["StackStatus"]
    if report.status not in HEALTHY_STACK_STATUSES:
        reason = described.get("StackStatusReason") or "see the stack's events"
        report.problems.append(f"stack status is {report.status}, not a completed deploy: {reason}")

    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    report.problems += [f"output {name} is missing" for name in sorted(expected - set(outputs))]
    report.problems += list(_failed_resources(cloudformation, stack, report))

    # The resources the outputs name, by the naming convention of template.yaml's outputs.
    checks = (
        ("BucketName", "buckets", lambda value: _bucket_problem(client("s3"), value)),
        (
            "StateMachineArn",
            "state machines",
            lambda value: _state_machine_problem(client("stepfunctions"), value),
        ),
        ("TopicArn", "topics", lambda value: _topic_problem(client("sns"), value)),
    )
    for name, value in sorted(outputs.items()):
        for suffix, what, check in checks:
            if name.endswith(suffix):
                report.count(what)
                if problem := check(value):
                    report.problems.append(problem)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the deployed stack's name")
    parser.add_argument("--template", type=Path, help="the deployed template (default: sam build output)")
    parser.add_argument("--region", help="AWS region (default: the AWS CLI's, e.g. AWS_REGION)")
    args = parser.parse_args(argv)

    template_path = args.template or next(
        (p for p in DEFAULT_TEMPLATES if p.is_file()), DEFAULT_TEMPLATES[-1]
    )
    if not template_path.is_file():
        print(f"error: template {template_path} not found: pass --template <path>", file=sys.stderr)
        return 2
    session = boto3.Session(region_name=args.region)
    try:
        report = check_stack(session, args.stack, expected_outputs(load_template(template_path)))
    except StackNotFound:
        print(
            f"error: stack {args.stack} not found in {session.region_name}: check STACK and the region",
            file=sys.stderr,
        )
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"error: cannot read stack {args.stack}: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
