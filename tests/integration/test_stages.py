"""Stages=staging-prod on the real pipeline and deploy definitions (moto's ASL interpreter through the
offline seams): a model serves on staging, soaks, and reaches prod only when promoted, by `mlops promote` or
by the run itself.

One embedded account with the stack deployed as Stages=staging-prod (PromotionMode manual, the default soak:
offline, waits are capped, and the soak check still reads the configured 30 minutes of metrics). Each scenario
uses its own dataset. Needs `make build` first. The figures (promotion wall time, state transitions) are
printed with `-s`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from test_pipeline_workflow import (
    BUILD,
    BUILD_DIR,
    FAST,
    IRIS,
    endpoint_tags,
    run_of,
    upload,
    visited,
)

from tests.cli.conftest import run_mlops

pytestmark = pytest.mark.skipif(not BUILD.is_file(), reason="run `make build` (sam build) first")


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    from offline.embedded import EmbeddedAws

    with EmbeddedAws(build_dir=BUILD_DIR, parameters={"Stages": "staging-prod"}) as embedded:
        yield embedded


def endpoints(aws: Any, dataset: str) -> tuple[str, str]:
    return f"{aws.stack_name}-{dataset}--staging", f"{aws.stack_name}-{dataset}"


def serving(aws: Any, endpoint: str) -> tuple[str, str | None]:
    """(status, the package its champion tag names) of an endpoint; ("missing", None) when there is none."""
    sagemaker = aws.client("sagemaker")
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except sagemaker.exceptions.ClientError:
        return "missing", None
    return described["EndpointStatus"], endpoint_tags(aws, described["EndpointArn"]).get(
        "mlops:model-package-arn"
    )


def history(aws: Any, execution_arn: str) -> list[dict[str, Any]]:
    sfn = aws.client("stepfunctions")
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]


def transitions(aws: Any, execution_arn: str) -> int:
    """State transitions as Step Functions bills them: one per state entered."""
    return sum(1 for event in history(aws, execution_arn) if event["type"].endswith("StateEntered"))


def promote(aws: Any, dataset: str) -> tuple[Any, float]:
    """`mlops promote <dataset>` against the embedded account; (its result, wall seconds)."""
    started = time.monotonic()
    result = run_mlops("--stack", aws.stack_name, "-o", "json", "promote", dataset, "--interval", "0.2")
    return result, time.monotonic() - started


def staged_run(aws: Any, dataset: str, since: float) -> dict[str, Any]:
    """The dataset's newest run started since `since`, once it has ended."""
    return run_of(aws, dataset, since)[-1]


def put_soak_errors(aws: Any, endpoint: str, count: int) -> None:
    """The staging endpoint's 5XX errors while it soaks, as SageMaker publishes them."""
    aws.client("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocation5XXErrors",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": datetime.now(UTC),
                "Value": count,
                "Unit": "Count",
            }
        ],
    )


@pytest.fixture(scope="module")
def early_uploads(aws: Any) -> dict[str, float]:
    """The runs that need no person start together at once, so they overlap the promotion scenario's runs
    (the added test time stays small). Dataset -> when its upload started."""
    put_soak_errors(aws, endpoints(aws, "weeds")[0], 3)
    return {
        "weeds": upload(aws, "weeds", {**FAST, "promotion_mode": "automatic"}),
        "daisies": upload(aws, "daisies", {**FAST, "promotion_mode": "automatic", "staging_soak_minutes": 1}),
    }


@dataclass
class Promoted:
    """tulips: one run staged, then `mlops promote`; what was seen before and after the promotion."""

    run: dict[str, Any]
    output: dict[str, Any]
    package: str
    before: dict[str, tuple[str, str | None]]
    after: dict[str, tuple[str, str | None]]
    promoted: Any
    seconds: float
    again: Any  # `mlops promote` once more, with prod serving the same package


@pytest.fixture(scope="module")
def promoted(aws: Any, early_uploads: dict[str, float]) -> Promoted:
    staging, prod = endpoints(aws, "tulips")
    run = staged_run(aws, "tulips", upload(aws, "tulips", FAST))
    assert run["status"] == "SUCCEEDED", run.get("cause")
    output = json.loads(run["output"])
    before = {"staging": serving(aws, staging), "prod": serving(aws, prod)}
    result, seconds = promote(aws, "tulips")
    after = {"staging": serving(aws, staging), "prod": serving(aws, prod)}
    package = output["registration"]["modelPackageArn"]
    again = run_mlops("--stack", aws.stack_name, "promote", "tulips")
    return Promoted(run, output, package, before, after, result, seconds, again)


def test_a_passing_model_serves_on_staging_and_reaches_prod_only_when_promoted(aws, promoted):
    staging, prod = endpoints(aws, "tulips")
    run, output, package = promoted.run, promoted.output, promoted.package
    shown = ("DeployModel", "SoakStaging", "CheckStagingSoak", "NotifyStaged")
    states = visited(aws, run["executionArn"])
    assert [s for s in states if s in shown] == list(shown) and "PromoteToProd" not in states
    notified = output["notification"]
    assert notified["outcome"] == "staged"
    assert f"mlops --stack {aws.stack_name} promote tulips" in notified["nextStep"]
    assert notified["stages"]["staging"] == {
        "endpointName": staging,
        "status": "serving",
        "modelPackageArn": package,
        "soak": {"seconds": 1800, "errors": {"Invocation5XXErrors": 0.0, "InvocationModelErrors": 0.0}},
    }
    assert notified["stages"]["prod"]["status"] == "awaiting promotion"
    assert promoted.before == {"staging": ("InService", package), "prod": ("missing", None)}

    answer = promoted.promoted.json()
    assert answer["status"] == "SUCCEEDED", answer["failure"]
    assert answer["modelPackageArn"] == package and answer["fromModelPackageArn"] is None
    # The same package on prod, smoke-tested there; staging unchanged.
    assert promoted.after == {"staging": ("InService", package), "prod": ("InService", package)}
    promotion_states = visited(aws, answer["executionArn"])
    assert "SmokeTest" in promotion_states and "NotifyDeployed" in promotion_states
    sagemaker = aws.client("sagemaker")
    staging_tags = endpoint_tags(aws, sagemaker.describe_endpoint(EndpointName=staging)["EndpointArn"])
    prod_tags = endpoint_tags(aws, sagemaker.describe_endpoint(EndpointName=prod)["EndpointArn"])
    assert staging_tags["mlops:stage"] == "staging" and "cost-guard:keep-running" not in staging_tags
    assert prod_tags["mlops:stage"] == "prod" and prod_tags["cost-guard:keep-running"] == "true"
    print(
        f"\nFIGURES staging run: {transitions(aws, run['executionArn'])} state transitions "
        f"(+ {transitions(aws, output['deployment']['executionArn'])} in its staging deployment); "
        f"promotion: {promoted.seconds:.1f}s wall from `mlops promote` to prod InService + smoke passed, "
        f"{transitions(aws, answer['executionArn'])} state transitions"
    )
    assert promoted.again.code == 2
    assert f"prod endpoint {prod} already serves {package}" in promoted.again.error_line
    listed = run_mlops("--stack", aws.stack_name, "-o", "json", "runs", "list", "--dataset", "tulips").json()
    assert (
        listed[-1]["outcome"] == "staged" and listed[-1]["stages"]["prod"]["status"] == "awaiting promotion"
    )


def test_a_smoke_failure_on_prod_rolls_prod_back_and_leaves_staging_alone(aws, promoted):
    staging, prod = endpoints(aws, "tulips")
    sagemaker = aws.client("sagemaker")
    if serving(aws, prod)[1] != promoted.package:
        pytest.skip("prod no longer serves the promoted package")
    prod_config = sagemaker.describe_endpoint(EndpointName=prod)["EndpointConfigName"]

    second = staged_run(aws, "tulips", upload(aws, "tulips", FAST, IRIS + "\n"))  # a new version
    assert second["status"] == "SUCCEEDED", second.get("cause")
    newer = json.loads(second["output"])["registration"]["modelPackageArn"]
    assert newer != promoted.package and serving(aws, staging) == ("InService", newer)
    staging_config = sagemaker.describe_endpoint(EndpointName=staging)["EndpointConfigName"]

    # The prod endpoint answers wrongly once updated: its smoke test fails.
    aws.faults.fail_api("sagemaker-runtime", "InvokeEndpoint", "ModelError", message="model crashed")
    failed, _ = promote(aws, "tulips")

    assert failed.code == 1
    answer = json.loads(failed.out)
    assert answer["status"] == "FAILED" and answer["failure"]["step"] == "SmokeTest"
    assert f"{prod} is going back to its previous endpoint config {prod_config}" in answer["failure"]["cause"]
    aws.faults.clear()
    deadline = time.monotonic() + 30
    while (now := sagemaker.describe_endpoint(EndpointName=prod))["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    assert now["EndpointConfigName"] == prod_config
    assert serving(aws, prod) == ("InService", promoted.package)
    assert serving(aws, staging) == ("InService", newer)  # staging untouched
    assert sagemaker.describe_endpoint(EndpointName=staging)["EndpointConfigName"] == staging_config
    status = run_mlops("--stack", aws.stack_name, "-o", "json", "status").json()
    stages_shown = {e["endpointName"]: e["stage"] for e in status["endpoints"]}
    assert stages_shown[staging] == "staging" and stages_shown[prod] == "prod"


def test_rollback_names_the_stage_whose_endpoint_it_changes(aws, promoted):
    """After the smoke failure above prod serves the first package and staging the second: `--stage prod`
    puts a named version on prod through the deploy workflow and leaves staging alone."""
    staging, prod = endpoints(aws, "tulips")
    staged_package = serving(aws, staging)[1]
    if serving(aws, prod)[1] != promoted.package or staged_package == promoted.package:
        pytest.skip("the stages do not serve what the smoke-failure test left")
    version = int(str(staged_package).rsplit("/", 1)[1])

    options = ["--stage", "prod", "--to", str(version), "--interval", "0.2"]
    result = run_mlops("--stack", aws.stack_name, "-o", "json", "rollback", "tulips", *options)

    answer = result.json()
    assert answer["status"] == "SUCCEEDED", answer["failure"]
    assert (answer["stage"], answer["endpointName"]) == ("prod", prod)
    assert serving(aws, prod) == ("InService", staged_package)
    assert serving(aws, staging) == ("InService", staged_package)  # staging served it already, untouched
    prod_tags = endpoint_tags(
        aws, aws.client("sagemaker").describe_endpoint(EndpointName=prod)["EndpointArn"]
    )
    assert prod_tags["mlops:stage"] == "prod" and prod_tags["cost-guard:keep-running"] == "true"


def test_errors_during_the_soak_fail_the_run_and_nothing_is_promoted(aws, early_uploads):
    staging, prod = endpoints(aws, "weeds")
    run = staged_run(aws, "weeds", early_uploads["weeds"])  # automatic promotion, 3 errors on staging
    assert run["status"] == "FAILED" and run["error"] == "SoakFailedError"
    assert run["cause"].startswith(
        f"CheckStagingSoak: staging endpoint {staging} returned errors during its 30-minute soak "
        "(3 Invocation5XXErrors"
    )
    assert "not promoted, prod is unchanged" in run["cause"]
    assert "PromoteToProd" not in visited(aws, run["executionArn"])
    assert serving(aws, prod) == ("missing", None)
    assert serving(aws, staging)[0] == "InService"


def test_automatic_promotion_puts_the_same_package_on_prod_within_the_run(aws, early_uploads):
    staging, prod = endpoints(aws, "daisies")
    run = staged_run(aws, "daisies", early_uploads["daisies"])
    assert run["status"] == "SUCCEEDED", run.get("cause")
    output = json.loads(run["output"])
    package = output["registration"]["modelPackageArn"]
    assert output["promotion"]["output"]["outcome"] == "deployed"
    assert output["notification"]["outcome"] == "succeeded"
    assert output["notification"]["stages"]["prod"] == {
        "endpointName": prod,
        "status": "serving",
        "modelPackageArn": package,
    }
    assert serving(aws, staging) == ("InService", package) and serving(aws, prod) == ("InService", package)
    # The run reports the promotion; the deploy workflow does not notify it a second time.
    assert "NotifyDeployed" not in visited(aws, output["promotion"]["executionArn"])
    print(
        f"\nFIGURES automatic run (staging + soak + prod): {transitions(aws, run['executionArn'])} state "
        f"transitions in the run, + {transitions(aws, output['deployment']['executionArn'])} (staging "
        f"deploy) + {transitions(aws, output['promotion']['executionArn'])} (prod deploy)"
    )
