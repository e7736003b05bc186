"""prepare_deployment, smoke_test and approval_listener against moto."""

from __future__ import annotations

import json
import random
import time

import pytest
import requests

from mlops_common.pipeline.deploy import EndpointBusyError, EndpointFailedError, PackageNotDeployableError
from mlops_common.pipeline.smoke import SmokeTestError
from mlops_common.step_values import StepInputError
from tests.conftest import load_function_module

from .conftest import (
    COORDINATION_TABLE,
    ROLE_ARN,
    STACK,
    Stack,
    load_event,
    serve_package,
    write_evaluation,
    write_uri,
)

prepare_deployment = load_function_module("prepare_deployment")
smoke_test = load_function_module("smoke_test")
approval_listener = load_function_module("approval_listener")
quality_gate = load_function_module("quality_gate")
register_model = load_function_module("register_model")


DEPLOY_EXECUTION = f"arn:aws:states:us-east-1:123456789012:execution:{STACK}-deploy:one"


def deploy_event(deploy_input: dict, execution: str = DEPLOY_EXECUTION) -> dict:
    """What the deploy machine passes PrepareDeployment: its input and its own execution ARN."""
    return {"input": deploy_input, "executionArn": execution}


def registered(stack: Stack, run: dict, context, **config) -> str:
    run["config"].update(config)
    write_evaluation(stack, run, {"accuracy": 0.9}, "multiclass_classification")
    gate = quality_gate.lambda_handler({"run": run}, context)
    result = register_model.lambda_handler(
        {"run": run, "gate": gate, "modelDataUrl": "s3://m/model.tar.gz"}, context
    )
    return result["modelPackageArn"]


def test_first_deployment_creates_a_serverless_endpoint(stack, prepared_run, lambda_context):
    arn = registered(stack, prepared_run, lambda_context)
    plan = prepare_deployment.lambda_handler(
        deploy_event({"modelPackageArn": arn, "source": "pipeline"}), lambda_context
    )
    assert plan["action"] == "create" and plan["serverless"] is True
    assert plan["variant"] == {
        "VariantName": "AllTraffic",
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
    }
    assert plan["deploymentConfig"] is None and plan["alarms"] == []
    assert plan["endpointArn"].endswith(f":endpoint/{STACK}-iris")
    assert plan["container"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert plan["servingTags"] == [{"Key": "mlops:model-package-arn", "Value": arn}]
    assert plan["smoke"]["testDataUri"] == prepared_run["paths"]["test"]
    assert plan["maxPolls"] * plan["waitSeconds"] >= 1800


def test_an_instance_endpoint_update_is_blue_green_with_rollback_alarms(stack, prepared_run, lambda_context):
    arn = registered(
        stack,
        prepared_run,
        lambda_context,
        deploy_mode="instance",
        rollout="canary",
        endpoint_instance_count=2,
        rollout_step_percent=25,
        rollout_wait_seconds=120,
    )
    serve_package(stack, prepared_run["names"]["endpoint"], None)

    plan = prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}), lambda_context)

    assert plan["action"] == "update" and plan["previousConfig"] == f"{STACK}-iris-cfg-0001"
    routing = plan["deploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 120,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
    }
    alarms = [a["AlarmName"] for a in plan["deploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
    assert alarms == [f"{STACK}-iris-5xx-errors", f"{STACK}-iris-model-latency"]
    described = stack_alarms(stack)
    assert described[f"{STACK}-iris-5xx-errors"]["MetricName"] == "Invocation5XXErrors"
    assert {d["Name"] for d in described[f"{STACK}-iris-model-latency"]["Dimensions"]} == {
        "EndpointName",
        "VariantName",
    }


def stack_alarms(stack: Stack) -> dict:
    import boto3

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    return {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}


def test_a_busy_endpoint_is_retried_later_and_unapproved_packages_are_refused(
    stack, prepared_run, lambda_context
):
    arn = registered(stack, prepared_run, lambda_context)
    serve_package(stack, prepared_run["names"]["endpoint"], None)
    from moto.sagemaker.models import sagemaker_backends

    sagemaker_backends["123456789012"]["us-east-1"].endpoints[
        prepared_run["names"]["endpoint"]
    ].endpoint_status = "Updating"
    with pytest.raises(EndpointBusyError, match="Updating"):
        prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}), lambda_context)
    stack.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    with pytest.raises(PackageNotDeployableError, match="is Rejected"):
        prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}), lambda_context)


SMOKE_SCHEMA = {
    "target_column": "species",
    "problem_type": "binary_classification",
    "feature_names": ["petal length", "colour"],
    "feature_kinds": {"petal length": "numeric", "colour": "categorical"},
    "class_labels": ["setosa", "versicolor"],
}


def smoke_event(stack: Stack, run: dict, endpoint: str, rows: int = 2, accuracy: float | None = None) -> dict:
    """The raw test split (header, raw values, target last) with ``rows`` rows sent; setosa rows first."""
    event = load_event("smoke_test.json")
    event["endpointName"] = endpoint
    event["smoke"].update(
        {
            "testDataUri": run["paths"]["test"],
            "schemaUri": run["paths"]["schema"],
            "rows": rows,
            "metrics": {} if accuracy is None else {"accuracy": accuracy},
        }
    )
    lines = ["petal length,colour,species", "1.4,white,setosa", "4.5,,versicolor"]
    lines += [f"{1.0 + i / 10},white,setosa" for i in range(40)]
    write_uri(stack, run["paths"]["test"] + "test.csv", "\n".join(lines) + "\n")
    write_uri(stack, run["paths"]["schema"] + "schema.json", json.dumps(SMOKE_SCHEMA))
    return event


def endpoint_answers(*bodies: str) -> None:
    results = [{"Body": body, "ContentType": "application/json"} for body in bodies]
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"results": results},
        timeout=5,
    )


def test_the_smoke_test_sends_raw_rows_without_the_target_and_accepts_right_answers(
    stack, prepared_run, lambda_context, monkeypatch
):
    serve_package(stack, "ep", None)
    endpoint_answers(json.dumps({"predictions": [{"label": "setosa"}, {"label": "versicolor"}]}))
    bodies: list[bytes] = []
    real_client = smoke_test.client

    def recording_client(name: str):
        made = real_client(name)
        if name == "sagemaker-runtime":
            made.meta.events.register(
                "before-call.sagemaker-runtime.InvokeEndpoint",
                lambda params, **_: bodies.append(params["body"]),
            )
        return made

    monkeypatch.setattr(smoke_test, "client", recording_client)
    result = smoke_test.lambda_handler(smoke_event(stack, prepared_run, "ep", accuracy=1.0), lambda_context)
    assert result["rows"] == 2
    assert result["agreement"] == 1.0
    assert json.loads(bodies[-1]) == {
        "instances": [{"petal length": "1.4", "colour": "white"}, {"petal length": "4.5", "colour": None}]
    }


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        ("not json", "expected JSON"),
        (json.dumps({"predictions": [{"label": "setosa"}]}), "sent 2 row"),
        (json.dumps({"predictions": [{"label": "setosa"}, {"label": "rose"}]}), "not one of the classes"),
    ],
)
def test_the_smoke_test_fails_on_a_wrong_answer(stack, prepared_run, lambda_context, answer, complaint):
    serve_package(stack, "ep", None)
    endpoint_answers(answer)
    with pytest.raises(SmokeTestError, match=complaint):
        smoke_test.lambda_handler(smoke_event(stack, prepared_run, "ep"), lambda_context)


def test_the_smoke_test_fails_a_model_answering_valid_classes_at_random(stack, prepared_run, lambda_context):
    serve_package(stack, "ep", None)
    rows = 30
    coin = random.Random(7)  # fixed: the test must not depend on luck
    labels = [coin.choice(["setosa", "versicolor"]) for _ in range(rows)]
    endpoint_answers(json.dumps({"predictions": [{"label": label} for label in labels]}))
    with pytest.raises(SmokeTestError, match=r"answered \d+ of 30 test rows correctly.*far below"):
        smoke_test.lambda_handler(smoke_event(stack, prepared_run, "ep", rows, accuracy=0.97), lambda_context)

    # The same answers pass the shape checks: only the comparison with the true labels catches them.
    endpoint_answers(json.dumps({"predictions": [{"label": label} for label in labels]}))
    result = smoke_test.lambda_handler(smoke_event(stack, prepared_run, "ep", rows), lambda_context)
    assert result["rows"] == rows
    assert result["agreement"] < 0.8


@pytest.fixture
def deploy_machine(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = stack.sfn.create_state_machine(
        name=f"{STACK}-deploy", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]
    monkeypatch.setenv("DEPLOY_STATE_MACHINE_ARN", arn)
    return arn


def approval_event(arn: str, group: str, status: str = "Approved", stack: Stack | None = None) -> dict:
    """The event SageMaker sends; with `stack`, its times are the package's (as AWS sends them)."""
    event = load_event("approval_listener_approved.json")
    event["detail"].update(
        {"ModelPackageArn": arn, "ModelPackageGroupName": group, "ModelApprovalStatus": status}
    )
    if stack is not None:
        described = stack.sagemaker.describe_model_package(ModelPackageName=arn)
        for field in ("CreationTime", "LastModifiedTime"):
            if field in described:
                event["detail"][field] = int(described[field].timestamp() * 1000)
    return event


def approve(stack: Stack, arn: str) -> None:
    """What a person does. AWS keeps CustomerMetadataProperties on UpdateModelPackage; moto 5.2.5 replaces
    them with the request's, so they are passed back here (the offline seams must keep them)."""
    properties = stack.sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    stack.sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", CustomerMetadataProperties=properties
    )


def test_a_manual_approval_starts_one_deployment(stack, prepared_run, lambda_context, deploy_machine):
    arn = registered(stack, prepared_run, lambda_context, approval_mode="manual")
    group = prepared_run["names"]["modelPackageGroup"]
    approve(stack, arn)

    first = approval_listener.lambda_handler(approval_event(arn, group), lambda_context)
    again = approval_listener.lambda_handler(approval_event(arn, group), lambda_context)

    assert (first["outcome"], again["outcome"]) == ("started", "duplicate")
    [execution] = stack.sfn.list_executions(stateMachineArn=deploy_machine)["executions"]
    assert json.loads(stack.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "modelPackageArn": arn,
        "source": "approval",
    }


def test_auto_approved_and_foreign_packages_are_left_alone(
    stack, prepared_run, lambda_context, deploy_machine
):
    arn = registered(stack, prepared_run, lambda_context)  # auto: the pipeline deploys it inline
    group = prepared_run["names"]["modelPackageGroup"]
    outcomes = [
        approval_listener.lambda_handler(approval_event(arn, group), lambda_context)["outcome"],
        approval_listener.lambda_handler(approval_event(arn, "other-stack-iris"), lambda_context)["outcome"],
        approval_listener.lambda_handler(approval_event(arn, group, "Rejected"), lambda_context)["outcome"],
    ]
    assert outcomes == ["ignored"] * 3
    assert stack.sfn.list_executions(stateMachineArn=deploy_machine)["executions"] == []


def test_approving_again_deploys_again_and_a_redelivered_event_does_not(
    stack, prepared_run, lambda_context, deploy_machine
):
    arn = registered(stack, prepared_run, lambda_context, approval_mode="manual")
    group = prepared_run["names"]["modelPackageGroup"]
    approve(stack, arn)
    first = approval_listener.lambda_handler(approval_event(arn, group, stack=stack), lambda_context)
    # The deployment ends without success (a Failed endpoint, say); the person fixes it and approves again.
    stack.sfn.stop_execution(executionArn=first["executionArn"], error="EndpointFailed")
    time.sleep(0.01)  # LastModifiedTime has millisecond resolution
    approve(stack, arn)

    second = approval_listener.lambda_handler(approval_event(arn, group, stack=stack), lambda_context)
    redelivered = approval_listener.lambda_handler(approval_event(arn, group, stack=stack), lambda_context)

    outcomes = (first["outcome"], second["outcome"], redelivered["outcome"])
    assert outcomes == ("started", "started", "duplicate")
    assert second["executionName"] != first["executionName"] and len(second["executionName"]) <= 80
    assert len(stack.sfn.list_executions(stateMachineArn=deploy_machine)["executions"]) == 2


def test_re_approving_an_older_auto_approved_package_rolls_back_to_it(
    stack, prepared_run, lambda_context, deploy_machine
):
    older = registered(stack, prepared_run, lambda_context)  # auto mode: created Approved
    group, endpoint = prepared_run["names"]["modelPackageGroup"], prepared_run["names"]["endpoint"]
    created = approval_listener.lambda_handler(approval_event(older, group, stack=stack), lambda_context)
    assert created["outcome"] == "ignored" and "its run deploys it" in created["reason"]
    serve_package(stack, endpoint, older)
    # The same package approved again while it serves: nothing to do.
    time.sleep(0.01)
    approve(stack, older)
    serving = approval_listener.lambda_handler(approval_event(older, group, stack=stack), lambda_context)
    assert serving["outcome"] == "ignored" and "already serves" in serving["reason"]

    # A newer package takes the endpoint; approving the older one again deploys it back.
    prepared_run["runId"] += "-newer"
    newer = registered(stack, prepared_run, lambda_context)
    endpoint_arn = stack.sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointArn"]
    stack.sagemaker.add_tags(
        ResourceArn=endpoint_arn, Tags=[{"Key": "mlops:model-package-arn", "Value": newer}]
    )
    time.sleep(0.01)
    approve(stack, older)
    rollback = approval_listener.lambda_handler(approval_event(older, group, stack=stack), lambda_context)

    assert rollback["outcome"] == "started"
    [execution] = stack.sfn.list_executions(stateMachineArn=deploy_machine)["executions"]
    assert json.loads(stack.sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {
        "modelPackageArn": older,
        "source": "approval",
    }


def test_a_stack_whose_name_prefixes_another_leaves_its_packages_alone(
    stack, prepared_run, lambda_context, deploy_machine, monkeypatch
):
    # Groups are '<stack>-<dataset>': sagemaker-mlops-iris also starts with the prefix of a stack "sagemaker".
    arn = registered(stack, prepared_run, lambda_context, approval_mode="manual")
    group = prepared_run["names"]["modelPackageGroup"]
    approve(stack, arn)
    monkeypatch.setenv("STACK_NAME", "sagemaker")

    result = approval_listener.lambda_handler(approval_event(arn, group), lambda_context)

    assert result["outcome"] == "ignored" and "registered by stack 'sagemaker-mlops'" in result["reason"]
    assert stack.sfn.list_executions(stateMachineArn=deploy_machine)["executions"] == []
    with pytest.raises(PackageNotDeployableError, match="by stack 'sagemaker-mlops', not sagemaker"):
        prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}), lambda_context)


finish_deployment = load_function_module("finish_deployment")


def set_endpoint_status(endpoint: str, status: str, reason: str | None = None) -> None:
    from moto.sagemaker.models import sagemaker_backends

    described = sagemaker_backends["123456789012"]["us-east-1"].endpoints[endpoint]
    described.endpoint_status = status
    if reason:
        described.failure_reason = reason


def test_one_rollout_per_endpoint_the_second_waits_for_the_lease(
    stack, prepared_run, lambda_context, deploy_machine
):
    arn = registered(stack, prepared_run, lambda_context)
    first, second = (
        stack.sfn.start_execution(stateMachineArn=deploy_machine, name=name)["executionArn"]
        for name in ("first", "second")
    )
    holding = prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}, first), lambda_context)
    waiting = prepare_deployment.lambda_handler(
        deploy_event({"modelPackageArn": arn}, second), lambda_context
    )
    again = prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}, first), lambda_context)
    assert (holding["status"], waiting["status"], again["status"]) == ("ready", "waiting", "ready")
    assert waiting["heldBy"] == first and waiting["waitSeconds"] == 30

    finished = finish_deployment.lambda_handler(
        {
            "outcome": "failed",
            "state": {"deploy": holding, "error": {"Error": "X", "Cause": "broken"}},
            "executionArn": first,
        },
        lambda_context,
    )
    assert finished["released"] is True
    tags = {t["Key"]: t["Value"] for t in stack.sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert tags["mlops:deploy-outcome"] == "failed" and tags["mlops:deploy-execution"] == "first"
    turn = prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}, second), lambda_context)
    assert turn["status"] == "ready"


def test_a_lease_whose_holder_ended_or_expired_is_taken_over(
    stack, prepared_run, lambda_context, deploy_machine
):
    arn = registered(stack, prepared_run, lambda_context)
    holder = stack.sfn.start_execution(stateMachineArn=deploy_machine, name="holder")["executionArn"]
    prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}, holder), lambda_context)
    stack.sfn.stop_execution(executionArn=holder)  # a stopped execution never reaches its release step
    other = stack.sfn.start_execution(stateMachineArn=deploy_machine, name="other")["executionArn"]
    assert (
        prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}, other), lambda_context)[
            "status"
        ]
        == "ready"
    )

    from mlops_common.pipeline import rollout_lease

    late = stack.sfn.start_execution(stateMachineArn=deploy_machine, name="late")["executionArn"]
    lease = dict(table=COORDINATION_TABLE, endpoint="ep", package_arn=arn, seconds=60)
    assert rollout_lease.acquire(stack.dynamodb, stack.sfn, execution_arn=other, now=1000, **lease).acquired
    assert not rollout_lease.acquire(
        stack.dynamodb, stack.sfn, execution_arn=late, now=1059, **lease
    ).acquired
    assert rollout_lease.acquire(stack.dynamodb, stack.sfn, execution_arn=late, now=1061, **lease).acquired


def test_a_pipeline_deployment_is_superseded_by_a_better_serving_model(stack, prepared_run, lambda_context):
    champion = registered(stack, prepared_run, lambda_context)
    stack.sagemaker.update_model_package(
        ModelPackageArn=champion,
        CustomerMetadataProperties={"metric:accuracy": "0.97"},
    )
    serve_package(stack, prepared_run["names"]["endpoint"], champion)
    prepared_run["runId"] += "-later"
    challenger = registered(stack, prepared_run, lambda_context)  # accuracy 0.9, gated before the champion

    from_pipeline = prepare_deployment.lambda_handler(
        deploy_event({"modelPackageArn": challenger, "source": "pipeline"}), lambda_context
    )
    assert from_pipeline["status"] == "superseded" and from_pipeline["championPackageArn"] == champion
    assert "accuracy 0.9 is worse than the serving model's 0.97" in from_pipeline["reason"]
    finished = finish_deployment.lambda_handler(
        {"outcome": "superseded", "state": {"deploy": from_pipeline}, "executionArn": DEPLOY_EXECUTION},
        lambda_context,
    )
    assert finished["released"] is True
    # A person's approval is deployed as asked, even when worse (a rollback by approval).
    approved = prepare_deployment.lambda_handler(
        deploy_event({"modelPackageArn": challenger, "source": "approval"}), lambda_context
    )
    assert approved["status"] == "ready" and approved["action"] == "update"


@pytest.mark.parametrize("status", ["UpdateRollbackFailed", "Failed"])
def test_an_endpoint_that_needs_a_person_fails_at_once(stack, prepared_run, lambda_context, status):
    arn = registered(stack, prepared_run, lambda_context)
    endpoint = prepared_run["names"]["endpoint"]
    serve_package(stack, endpoint, None)
    set_endpoint_status(endpoint, status, "the old fleet did not come back")
    with pytest.raises(EndpointFailedError, match=f"is {status} \\(the old fleet did not come back\\)"):
        prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}), lambda_context)


def test_the_deploy_input_is_checked(stack, lambda_context):
    with pytest.raises(
        PackageNotDeployableError, match="endpointName 'bad name!' is not a SageMaker endpoint"
    ):
        prepare_deployment.lambda_handler(
            deploy_event({"modelPackageArn": "arn", "endpointName": "bad name!"}), lambda_context
        )
    with pytest.raises(StepInputError, match=r"prepare_deployment input: input\.modelPackageArn is missing"):
        prepare_deployment.lambda_handler(deploy_event({}), lambda_context)


def test_the_cli_rollback_source_is_a_persons_request():
    from mlops_common.pipeline.deploy import DeployRequest

    assert DeployRequest.from_input({"modelPackageArn": "arn", "source": "rollback"}).source == "rollback"
    with pytest.raises(
        PackageNotDeployableError, match="source 'later' must be one of pipeline, approval, rollback"
    ):
        DeployRequest.from_input({"modelPackageArn": "arn", "source": "later"})
