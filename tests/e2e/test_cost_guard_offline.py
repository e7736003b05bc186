"""The cost guard in the embedded AWS: its schedule rules are fired on demand (moto never fires them), the
deployed handlers sweep, and the deployed restore function brings a deleted endpoint back."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from offline import REGION
from offline.demo import fire_schedule
from offline.embedded import EmbeddedAws
from offline.seams.event_targets import fire_rule

IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def backend() -> Any:
    return sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]


def rule_target(aws: EmbeddedAws, rule_output: str) -> str:
    """The function a schedule rule of the stack invokes."""
    (target,) = aws.client("events").list_targets_by_rule(Rule=aws.outputs[rule_output])["Targets"]
    return target["Arn"].rsplit(":function:", 1)[-1]


def old_idle_endpoint(aws: EmbeddedAws, name: str) -> None:
    """An endpoint that has been InService, uncalled, for three days."""
    sm = aws.client("sagemaker")
    sm.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn=aws.outputs["SageMakerExecutionRoleArn"],
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{aws.outputs['ModelsBucketName']}/none.tar.gz",
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(
        EndpointName=name, EndpointConfigName=f"{name}-config", Tags=[{"Key": "team", "Value": "e2e"}]
    )
    # The offline endpoint seam tries to serve the (absent) model and ends Failed; wait for that, then make it
    # the kind of endpoint the sweep is for. Only the sweep is under test here, not serving.
    deadline = time.monotonic() + 30
    while backend().endpoints[name].endpoint_status == "Creating" and time.monotonic() < deadline:
        time.sleep(0.1)
    fake = backend().endpoints[name]
    fake.endpoint_status = "InService"
    # Naive UTC, as moto stores it: an aware value breaks ListEndpoints' sort once other endpoints exist.
    fake.creation_time = fake.last_modified_time = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=3)


def test_the_endpoint_schedule_fires_on_demand_and_restore_undoes_it(aws: EmbeddedAws) -> None:
    function = rule_target(aws, "EndpointSweepRuleName")
    assert function == aws.outputs["EndpointSweeperFunctionName"]
    old_idle_endpoint(aws, "cg-e2e-idle")

    dry = fire_schedule(aws.client, function, None, dry_run=True)
    assert {"name": "cg-e2e-idle", "action": "would_delete"}.items() <= _acted(dry, "cg-e2e-idle").items()
    assert "cg-e2e-idle" in _endpoints(aws)

    applied = fire_schedule(aws.client, function, None, dry_run=False)

    assert _acted(applied, "cg-e2e-idle")["action"] == "deleted"
    assert "cg-e2e-idle" not in _endpoints(aws)
    record = aws.client("s3").get_object(
        Bucket=aws.outputs["ModelsBucketName"], Key="cost-guard/deleted-endpoints/cg-e2e-idle.json"
    )
    assert json.loads(record["Body"].read())["endpoint_config_name"] == "cg-e2e-idle-config"

    response = aws.client("lambda").invoke(
        FunctionName=aws.outputs["RestoreEndpointFunctionName"],
        Payload=json.dumps({"endpoint_name": "cg-e2e-idle"}).encode(),
    )

    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read())["status"] == "restoring"
    restored = aws.client("sagemaker").describe_endpoint(EndpointName="cg-e2e-idle")
    assert restored["EndpointConfigName"] == "cg-e2e-idle-config"
    tags = aws.client("sagemaker").list_tags(ResourceArn=restored["EndpointArn"])["Tags"]
    assert {"Key": "team", "Value": "e2e"} in tags


def test_the_notebook_schedule_fires_on_demand_in_dry_run(aws: EmbeddedAws) -> None:
    function = rule_target(aws, "NotebookSweepRuleName")
    assert function == aws.outputs["NotebookSweeperFunctionName"]
    aws.client("sagemaker").create_notebook_instance(
        NotebookInstanceName="cg-e2e-notebook",
        InstanceType="ml.t3.medium",
        RoleArn=aws.outputs["SageMakerExecutionRoleArn"],
    )
    backend().notebook_instances["cg-e2e-notebook"].last_modified_time = datetime.now(UTC) - timedelta(days=1)

    result = fire_schedule(aws.client, function, None, dry_run=True)

    assert result["dry_run"] is True
    assert _acted(result, "cg-e2e-notebook")["action"] == "would_stop"
    status = aws.client("sagemaker").describe_notebook_instance(NotebookInstanceName="cg-e2e-notebook")
    assert status["NotebookInstanceStatus"] == "InService"


def test_the_notebook_rule_fired_through_eventbridge_stops_an_idle_notebook(aws: EmbeddedAws) -> None:
    # The whole scheduled path: the stack's rule, its target and Input, the async invoke, the real settings.
    sm = aws.client("sagemaker")
    sm.create_notebook_instance(
        NotebookInstanceName="cg-e2e-rule-idle",
        InstanceType="ml.t3.medium",
        RoleArn=aws.outputs["SageMakerExecutionRoleArn"],
    )
    sm.create_notebook_instance(
        NotebookInstanceName="cg-e2e-rule-kept",
        InstanceType="ml.t3.medium",
        RoleArn=aws.outputs["SageMakerExecutionRoleArn"],
        Tags=[{"Key": "cost-guard:keep-running", "Value": "true"}],
    )
    for name in ("cg-e2e-rule-idle", "cg-e2e-rule-kept"):
        backend().notebook_instances[name].last_modified_time = datetime.now(UTC) - timedelta(days=1)

    (delivery,) = fire_rule(aws.outputs["NotebookSweepRuleName"])

    assert delivery.done.wait(60), "the sweeper did not finish"
    assert delivery.error is None, delivery.error
    assert delivery.function_name.endswith(f":function:{aws.outputs['NotebookSweeperFunctionName']}")
    status = {
        name: sm.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"]
        for name in ("cg-e2e-rule-idle", "cg-e2e-rule-kept")
    }
    assert status["cg-e2e-rule-idle"] in {"Stopping", "Stopped"}, status
    assert status["cg-e2e-rule-kept"] == "InService", status


def _acted(summary: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [item for item in summary["acted_on"] if item["name"] == name]
    if not matches:
        pytest.fail(f"{name} not acted on: {json.dumps(summary, indent=2)}")
    return matches[0]


def _endpoints(aws: EmbeddedAws) -> set[str]:
    pages = aws.client("sagemaker").get_paginator("list_endpoints").paginate()
    return {e["EndpointName"] for page in pages for e in page["Endpoints"]}
