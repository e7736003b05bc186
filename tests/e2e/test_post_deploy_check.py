"""`make smoke` (cicd/post_deploy_check.py) on the deployed offline stack; its IAM in cicd/bootstrap.yaml."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest
from samcli.yamlhelper import yaml_parse

from cicd import post_deploy_check
from offline.embedded import EmbeddedAws

ROOT = Path(__file__).resolve().parents[2]
# Operations whose IAM action has another name.
IAM_ACTION_OF = {"s3:HeadBucket": "s3:ListBucket"}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def deployed_template(aws: EmbeddedAws) -> Path:
    return aws.build_dir / "template.yaml"


def test_the_deployed_stack_passes(aws: EmbeddedAws, capsys: pytest.CaptureFixture[str]) -> None:
    code = post_deploy_check.main(["--stack", aws.stack_name, "--template", str(deployed_template(aws))])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith(f"ok: stack {aws.stack_name} is CREATE_COMPLETE")
    # Every bucket, state machine and topic the template's outputs name was really looked at.
    outputs = post_deploy_check.expected_outputs(yaml_parse(deployed_template(aws).read_text()))
    for suffix, what in (
        ("BucketName", "buckets"),
        ("StateMachineArn", "state machines"),
        ("TopicArn", "topics"),
    ):
        count = sum(name.endswith(suffix) for name in outputs)
        assert count and f"{what}: {count}" in out, (what, count)


def test_every_call_it_makes_is_allowed_to_the_deploy_role(aws: EmbeddedAws) -> None:
    session = boto3.Session(region_name="us-east-1")
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        action = f"{model.service_model.signing_name}:{model.name}"
        called.add(IAM_ACTION_OF.get(action, action))

    session.events.register("before-call", record)
    expected = post_deploy_check.expected_outputs(yaml_parse(deployed_template(aws).read_text()))
    assert post_deploy_check.check_stack(session, aws.stack_name, expected).healthy
    role = yaml_parse((ROOT / "cicd" / "bootstrap.yaml").read_text())["Resources"]["DeployRole"]
    allowed = [
        action
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in as_list(statement["Action"])
    ]
    assert called >= {"cloudformation:DescribeStacks", "s3:GetBucketVersioning", "sns:GetTopicAttributes"}
    assert {c for c in called if not any(fnmatchcase(c, a) for a in allowed)} == set()


def test_a_bucket_without_versioning_and_a_missing_output_fail_the_check(aws: EmbeddedAws) -> None:
    s3 = aws.client("s3")
    bucket = aws.outputs["ModelsBucketName"]
    session = boto3.Session(region_name="us-east-1")
    expected = post_deploy_check.expected_outputs(yaml_parse(deployed_template(aws).read_text()))
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    try:
        report = post_deploy_check.check_stack(session, aws.stack_name, expected | {"PredictionsQueueUrl"})
    finally:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert not report.healthy
    assert report.problems == [
        "output PredictionsQueueUrl is missing",
        f"bucket {bucket}: versioning is Suspended, the template enables it",
    ]
    assert report.summary().startswith(f"FAILED: stack {aws.stack_name} (CREATE_COMPLETE): 2 problem(s)")


def test_an_unknown_stack_is_a_one_line_error(aws: EmbeddedAws, capsys: pytest.CaptureFixture[str]) -> None:
    code = post_deploy_check.main(["--stack", "no-such-stack", "--template", str(deployed_template(aws))])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == "error: stack no-such-stack not found in us-east-1: check STACK and the region\n"
