"""Quality gate: threshold and champion/challenger on the evaluation job's metrics."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_common.aws import client
from mlops_common.pipeline import gate
from mlops_common.pipeline.run_config import RunConfig, metric_and_threshold
from mlops_common.step_values import GateDecision, QualityGateInput, parse

logger = Logger(service="pipeline-quality-gate")
metrics = Metrics(service="pipeline")


@logger.inject_lambda_context(correlation_id_path="run.runId")
@metrics.log_metrics
def lambda_handler(event: QualityGateInput, context: LambdaContext) -> GateDecision:
    run = parse(QualityGateInput, event, what="quality_gate input")["run"]
    evaluation_uri, evaluation = gate.read_evaluation(client("s3"), run["paths"]["evaluation"])
    metric, threshold = metric_and_threshold(RunConfig(run["config"]), evaluation.get("problem_type", ""))
    champion = gate.find_champion(client("sagemaker"), run["names"]["endpoint"])
    result = gate.decide(evaluation["metrics"], metric, threshold, champion)
    if not result.passed:
        metrics.add_dimension(name="dataset", value=run["names"]["modelPackageGroup"])
        metrics.add_metric(name="GateRejections", unit=MetricUnit.Count, value=1)
    logger.info("gate decided", extra=result.as_dict())
    decision = {
        **result.as_dict(),
        "metrics": evaluation["metrics"],
        "problemType": evaluation.get("problem_type"),
        "evaluationUri": evaluation_uri,
    }
    return parse(GateDecision, decision, what="quality_gate result")
