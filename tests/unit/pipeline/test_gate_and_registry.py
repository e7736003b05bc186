"""quality_gate and register_model against moto: evaluation.json in S3, the champion behind the endpoint."""

from __future__ import annotations

import pytest

from mlops_common.pipeline import gate
from mlops_common.pipeline.gate import Champion, EvaluationError
from tests.conftest import load_function_module

from .conftest import Stack, serve_package, write_evaluation

quality_gate = load_function_module("quality_gate")
register_model = load_function_module("register_model")
MODEL_DATA = "s3://models/runs/iris/r/training/job/output/model.tar.gz"


def register(stack: Stack, run: dict, gate_result: dict, context) -> dict:
    return register_model.lambda_handler(
        {"run": run, "gate": gate_result, "modelDataUrl": MODEL_DATA}, context
    )


def test_first_model_passes_a_threshold_and_is_registered_approved(stack, prepared_run, lambda_context):
    prepared_run["config"]["threshold"] = 0.8
    write_evaluation(stack, prepared_run, {"accuracy": 0.93, "f1_macro": 0.9}, "multiclass_classification")

    result = quality_gate.lambda_handler({"run": prepared_run}, lambda_context)

    assert result["passed"] is True and result["metric"] == "accuracy" and result["value"] == 0.93
    assert result["championPackageArn"] is None
    registration = register(stack, prepared_run, result, lambda_context)
    assert registration["approvalStatus"] == "Approved"
    package = stack.sagemaker.describe_model_package(ModelPackageName=registration["modelPackageArn"])
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == MODEL_DATA
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == prepared_run["code"]["sourceDir"]
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["S3Uri"] == prepared_run["paths"]["evaluation"] + "evaluation.json"
    properties = package["CustomerMetadataProperties"]
    assert properties["run-id"] == prepared_run["runId"] and properties["metric:accuracy"] == "0.93"
    assert properties["report-uri"] == prepared_run["paths"]["report"]
    assert (
        properties["approval-mode"] == "auto"
        and properties["endpoint-name"] == prepared_run["names"]["endpoint"]
    )


def test_below_threshold_is_rejected_with_the_numbers(stack, prepared_run, lambda_context):
    prepared_run["config"]["threshold"] = 0.95
    write_evaluation(stack, prepared_run, {"accuracy": 0.9}, "binary_classification")
    result = quality_gate.lambda_handler({"run": prepared_run}, lambda_context)
    assert result["passed"] is False
    assert result["reason"] == "accuracy 0.9 does not meet the threshold: it must be at least 0.95"


def test_a_challenger_worse_than_the_serving_champion_is_rejected(stack, prepared_run, lambda_context):
    write_evaluation(stack, prepared_run, {"accuracy": 0.97}, "multiclass_classification")
    champion = register(
        stack,
        prepared_run,
        quality_gate.lambda_handler({"run": prepared_run}, lambda_context),
        lambda_context,
    )
    serve_package(stack, prepared_run["names"]["endpoint"], champion["modelPackageArn"])

    prepared_run["runId"] = "iris-second-run"
    write_evaluation(stack, prepared_run, {"accuracy": 0.91}, "multiclass_classification")
    result = quality_gate.lambda_handler({"run": prepared_run}, lambda_context)

    assert result["passed"] is False
    assert result["championValue"] == 0.97 and result["championPackageArn"] == champion["modelPackageArn"]
    assert "worse than the serving model's 0.97" in result["reason"]


def test_regression_uses_rmse_where_lower_is_better(stack, prepared_run, lambda_context):
    write_evaluation(stack, prepared_run, {"rmse": 3.0, "mae": 2.0, "r2": 0.7}, "regression")
    first = quality_gate.lambda_handler({"run": prepared_run}, lambda_context)
    assert (first["metric"], first["passed"]) == ("rmse", True)
    champion = Champion("arn:aws:sagemaker:us-east-1:123456789012:model-package/x/1", {"rmse": 2.5})
    assert gate.decide({"rmse": 3.0}, "rmse", None, champion).passed is False
    assert gate.decide({"rmse": 2.0}, "rmse", None, champion).passed is True
    assert gate.decide({"rmse": 2.5}, "rmse", 2.4, champion).passed is False


def test_a_missing_metric_or_evaluation_is_an_error_that_says_what_exists(
    stack, prepared_run, lambda_context
):
    with pytest.raises(EvaluationError, match="wrote no"):
        quality_gate.lambda_handler({"run": prepared_run}, lambda_context)
    prepared_run["config"]["metric"] = "roc_auc"
    write_evaluation(stack, prepared_run, {"accuracy": 0.9}, "multiclass_classification")
    with pytest.raises(EvaluationError, match="has no metric 'roc_auc' \\(it has accuracy\\)"):
        quality_gate.lambda_handler({"run": prepared_run}, lambda_context)


def test_manual_mode_registers_pending_and_a_retry_does_not_register_twice(
    stack, prepared_run, lambda_context
):
    prepared_run["config"]["approval_mode"] = "manual"
    write_evaluation(stack, prepared_run, {"accuracy": 0.9}, "multiclass_classification")
    result = quality_gate.lambda_handler({"run": prepared_run}, lambda_context)

    first = register(stack, prepared_run, result, lambda_context)
    retry = register(stack, prepared_run, result, lambda_context)

    assert first["approvalStatus"] == "PendingManualApproval"
    assert retry["modelPackageArn"] == first["modelPackageArn"] and retry["reused"] is True
    packages = stack.sagemaker.list_model_packages(
        ModelPackageGroupName=prepared_run["names"]["modelPackageGroup"]
    )
    assert len(packages["ModelPackageSummaryList"]) == 1
