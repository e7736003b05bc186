"""Stages (staging -> prod): names, the run's stage plan, the soak check against CloudWatch, the promotion
lookup and start, the prod endpoint's cost-guard protection; against moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from mlops_common.pipeline import naming, report, stages
from mlops_common.pipeline.stages import PromotionRefusedError, SoakFailedError, StageSettings
from tests.conftest import load_function_module

from .conftest import REGION, ROLE_ARN, STACK, Stack, serve_package
from .test_deploy_steps import deploy_event, registered

prepare_deployment = load_function_module("prepare_deployment")
check_soak_function = load_function_module("check_soak")
STAGING = f"{STACK}-iris--staging"
PROD = f"{STACK}-iris"


def test_stage_endpoint_names_stay_within_63_characters_and_apart_from_other_datasets():
    stack = "s" * naming.STACK_NAME_MAX
    for dataset in ("iris", "a" * 200, "My Data!"):
        for stage in (None, "staging", "prod"):
            name = naming.stage_endpoint_name(stack, dataset, stage)
            assert len(name) <= naming.SAGEMAKER_NAME_MAX and naming.is_valid_sagemaker_name(name), name
    assert naming.stage_endpoint_name(STACK, "iris", "prod") == naming.stage_endpoint_name(STACK, "iris")
    assert naming.stage_endpoint_name(STACK, "iris", "staging") == STAGING
    # The dataset 'iris-staging' keeps its own endpoint: no slug holds '--'.
    assert naming.stage_endpoint_name(STACK, "iris-staging") != STAGING
    with pytest.raises(ValueError, match="stage 'qa'"):
        naming.stage_endpoint_name(STACK, "iris", "qa")


def test_stage_settings_fail_closed_and_pipeline_json_overrides_promotion_and_soak():
    assert StageSettings.from_env({}) == StageSettings("single", "manual", 30)
    for bad in ({"STAGES": "blue-green"}, {"PROMOTION_MODE": "later"}, {"STAGING_SOAK_MINUTES": "-1"}):
        with pytest.raises(ValueError):
            StageSettings.from_env(bad)
    single = stages.run_stages(StageSettings(), STACK, "iris", {})
    assert single == {"mode": "single", "first": None, "endpoints": {"prod": PROD}}
    two = StageSettings("staging-prod", "manual", 30)
    plan = stages.run_stages(two, STACK, "iris", {"promotion_mode": "automatic", "staging_soak_minutes": 2})
    assert plan["first"] == "staging" and plan["promotion"] == "automatic" and plan["soakSeconds"] == 120
    assert plan["endpoints"] == {"staging": STAGING, "prod": PROD}


def test_a_two_stage_run_deploys_to_staging_and_registers_that_endpoint(stack, monkeypatch, lambda_context):
    from mlops_common.pipeline import prepare

    from .conftest import IRIS_CSV, run_input

    stack.put("training/iris/iris.csv", IRIS_CSV)
    settings = prepare.Settings(
        STACK,
        REGION,
        stack.input_bucket,
        stack.output_bucket,
        stack.models_bucket,
        stages=StageSettings("staging-prod"),
    )
    run = prepare.prepare_run(
        run_input(stack, "iris"), settings, stack.s3, stack.sagemaker, recipe_files={"train.py": b"# x\n"}
    )
    assert run["names"]["endpoint"] == STAGING and run["names"]["modelPackageGroup"] == PROD
    arn = registered(stack, run, lambda_context)
    package = stack.sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["CustomerMetadataProperties"]["endpoint-name"] == STAGING


def put_errors(cloudwatch, endpoint: str, metric: str, value: float, when: datetime) -> None:
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": when,
                "Value": value,
                "Unit": "Count",
            }
        ],
    )


def test_a_clean_soak_passes_and_counts_only_its_own_endpoint_and_window(stack):
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    now = datetime.now(UTC)
    put_errors(cloudwatch, STAGING, "Invocation5XXErrors", 0, now - timedelta(minutes=5))
    put_errors(cloudwatch, PROD, "Invocation5XXErrors", 4, now - timedelta(minutes=5))  # another endpoint
    put_errors(cloudwatch, STAGING, "InvocationModelErrors", 3, now - timedelta(hours=3))  # before the soak
    result = stages.check_soak(cloudwatch, STAGING, 1800, now=now)
    assert result.errors == {"Invocation5XXErrors": 0.0, "InvocationModelErrors": 0.0}


@pytest.mark.parametrize("metric", ["Invocation5XXErrors", "InvocationModelErrors"])
def test_errors_during_the_soak_fail_it_naming_the_endpoint_the_counts_and_what_to_do(stack, metric):
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    now = datetime.now(UTC)
    put_errors(cloudwatch, STAGING, metric, 2, now - timedelta(minutes=10))
    put_errors(cloudwatch, STAGING, metric, 1, now - timedelta(minutes=1))
    with pytest.raises(SoakFailedError) as failed:
        stages.check_soak(cloudwatch, STAGING, 1800, now=now)
    message = str(failed.value)
    assert f"staging endpoint {STAGING} returned errors during its 30-minute soak (3 {metric}" in message
    assert "not promoted, prod is unchanged" in message


def test_the_soak_function_returns_the_counts(stack, lambda_context):
    result = check_soak_function.lambda_handler(
        {"runId": "iris-1", "endpointName": STAGING, "soakSeconds": 60}, lambda_context
    )
    assert result["passed"] is True and result["errors"]["Invocation5XXErrors"] == 0.0


@pytest.fixture
def deploy_machine(stack: Stack) -> str:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    return stack.sfn.create_state_machine(
        name=f"{STACK}-deploy", definition=json.dumps(definition), roleArn=ROLE_ARN
    )["stateMachineArn"]


def test_promotion_refuses_when_staging_serves_nothing(stack, deploy_machine):
    promote = {"deploy_state_machine_arn": deploy_machine, "stack_name": STACK, "dataset": "iris"}
    with pytest.raises(PromotionRefusedError, match=f"no staging endpoint \\({STAGING}\\): nothing to"):
        stages.start_promotion(stack.sagemaker, stack.sfn, **promote)
    serve_package(stack, STAGING, None)  # an endpoint whose smoke test never passed: no champion tag
    with pytest.raises(PromotionRefusedError, match="serves no model that passed its smoke test"):
        stages.start_promotion(stack.sagemaker, stack.sfn, **promote)


def test_promotion_refuses_a_staging_endpoint_that_is_not_in_service(stack, prepared_run, lambda_context):
    from moto.sagemaker.models import sagemaker_backends

    serve_package(stack, STAGING, registered(stack, prepared_run, lambda_context))
    backend = sagemaker_backends["123456789012"][REGION]
    backend.endpoints[STAGING].endpoint_status = "Updating"
    with pytest.raises(PromotionRefusedError, match="is Updating, not InService"):
        stages.staged_model(stack.sagemaker, stack_name=STACK, dataset="iris")


def test_promotion_starts_the_deploy_workflow_on_prod_with_the_package_staging_serves(
    stack, prepared_run, lambda_context, deploy_machine
):
    arn = registered(stack, prepared_run, lambda_context)
    serve_package(stack, STAGING, arn)
    started = stages.start_promotion(
        stack.sagemaker, stack.sfn, deploy_state_machine_arn=deploy_machine, stack_name=STACK, dataset="iris"
    )
    assert started["modelPackageArn"] == arn and started["fromModelPackageArn"] is None
    assert started["prodEndpoint"] == PROD and len(started["executionName"]) <= naming.EXECUTION_NAME_MAX
    execution = stack.sfn.describe_execution(executionArn=started["executionArn"])
    assert json.loads(execution["input"]) == {
        "modelPackageArn": arn,
        "source": "promotion",
        "stage": "prod",
        "endpointName": PROD,
    }
    # The deploy workflow's first step plans the prod endpoint, protected from the cost guard, no re-gate.
    plan = prepare_deployment.lambda_handler(deploy_event(json.loads(execution["input"])), lambda_context)
    assert plan["endpointName"] == PROD and plan["stage"] == "prod" and plan["status"] == "ready"
    assert {"Key": "cost-guard:keep-running", "Value": "true"} in plan["tags"]
    assert {"Key": "mlops:stage", "Value": "prod"} in plan["tags"]

    serve_package(stack, PROD, arn)  # once prod serves it, promoting again is refused
    with pytest.raises(PromotionRefusedError, match=f"prod endpoint {PROD} already serves"):
        stages.staged_model(stack.sagemaker, stack_name=STACK, dataset="iris")


def test_a_prod_endpoint_from_a_single_stage_stack_gains_the_cost_guard_opt_out_when_promoted_to(
    stack, prepared_run, lambda_context
):
    """A stack switched from one stage to two serves prod from its old endpoint, created without stage tags:
    the promotion's update tags it once its smoke test passed, as AddTags does not need a create."""
    arn = registered(stack, prepared_run, lambda_context)
    serve_package(stack, PROD, None)  # the single-stage endpoint, untagged
    plan = prepare_deployment.lambda_handler(
        deploy_event({"modelPackageArn": arn, "source": "promotion", "stage": "prod", "endpointName": PROD}),
        lambda_context,
    )
    assert plan["action"] == "update"
    assert {"Key": "cost-guard:keep-running", "Value": "true"} in plan["servingTags"]
    assert {"Key": "mlops:stage", "Value": "prod"} in plan["servingTags"]
    single = prepare_deployment.lambda_handler(
        deploy_event({"modelPackageArn": arn}, execution=f"{STACK}-y"), lambda_context
    )
    assert single["servingTags"] == [{"Key": "mlops:model-package-arn", "Value": arn}]


def test_a_staging_deployment_may_be_swept_and_a_single_stage_one_is_tagged_as_before(
    stack, prepared_run, lambda_context
):
    arn = registered(stack, prepared_run, lambda_context)
    single = prepare_deployment.lambda_handler(deploy_event({"modelPackageArn": arn}), lambda_context)
    assert single["tags"] == [{"Key": "mlops:stack", "Value": STACK}] and single["stage"] is None
    staged = prepare_deployment.lambda_handler(
        deploy_event({"modelPackageArn": arn, "endpointName": STAGING}, execution=f"{STACK}-x"),
        lambda_context,
    )
    assert staged["stage"] == "staging"
    assert staged["tags"] == [
        {"Key": "mlops:stack", "Value": STACK},
        {"Key": "mlops:stage", "Value": "staging"},
    ]


def test_the_run_report_shows_both_stages():
    run = {"dataset": "iris", "stages": stages.run_stages(StageSettings("staging-prod"), STACK, "iris", {})}
    deployed = {"output": {"outcome": "deployed", "modelPackageArn": "arn:p/3"}}
    staged = report.stage_summary({"run": run, "deployment": deployed, "soak": {"errors": {}}})["stages"]
    assert staged["staging"]["status"] == "serving" and staged["prod"]["status"] == "awaiting promotion"
    failed = report.stage_summary({"run": run, "deployment": deployed, "failedStep": "CheckStagingSoak"})
    assert failed["stages"]["staging"]["status"] == "soak failed"
    assert failed["stages"]["prod"]["status"] == "not promoted"
    promoted = report.stage_summary({"run": run, "deployment": deployed, "soak": {}, "promotion": deployed})
    assert promoted["stages"]["prod"] == {
        "endpointName": PROD,
        "status": "serving",
        "modelPackageArn": "arn:p/3",
    }
    assert report.stage_summary({"run": {"stages": {"mode": "single"}}}) == {}
