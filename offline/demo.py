"""`make demo`: deploy into an embedded AWS, drop the sample dataset, follow the run up to a prediction."""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from offline import DEFAULT_STACK_NAME, STATE_DIR, DeployError
from offline.embedded import EmbeddedAws
from offline.follow import find_key, follow_executions, parse_output
from offline.stack import DEFAULT_BUILD_DIR

SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"
DEMO_DATASET = "iris"
DEMO_WORK_DIR = STATE_DIR / "demo"
# Handlers' logs, jobs' output and moto's messages go here, so the terminal shows the run's states only.
DEMO_LOG = DEMO_WORK_DIR / "demo.log"
RUN_TIMEOUT_SECONDS = 300.0


def _shown(path: Path) -> str:
    """A path as short as possible for the terminal: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class DemoFailed(RuntimeError):
    """The run failed; the message names the failing step and its cause."""


def upload_dataset(s3: Any, bucket: str, dataset: str, folder: Path) -> list[str]:
    """Upload a sample dataset folder to training/<dataset>/.

    pipeline.json goes first, so the run that the data file starts reads it.
    """
    files = sorted(folder.iterdir(), key=lambda p: (p.name != "pipeline.json", p.name))
    keys = []
    for path in files:
        key = f"training/{dataset}/{path.name}"
        s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def stack_state_machines(aws: EmbeddedAws) -> dict[str, str]:
    """Logical id -> ARN of every state machine in the stack."""
    assert aws.deployment
    return {
        logical_id: aws.deployment.resources[logical_id]
        for logical_id, resource in aws.deployment.template["Resources"].items()
        if resource["Type"] == "AWS::StepFunctions::StateMachine" and logical_id in aws.deployment.resources
    }


def newest_model_package(sagemaker: Any) -> dict[str, Any] | None:
    newest: dict[str, Any] | None = None
    for page in sagemaker.get_paginator("list_model_package_groups").paginate():
        for group in page["ModelPackageGroupSummaryList"]:
            packages = sagemaker.list_model_packages(
                ModelPackageGroupName=group["ModelPackageGroupName"],
                SortBy="CreationTime",
                SortOrder="Descending",
            )["ModelPackageSummaryList"]
            if packages and (newest is None or packages[0]["CreationTime"] > newest["CreationTime"]):
                newest = packages[0]
    return newest


def download_report(aws: EmbeddedAws, package_arn: str, folder: Path) -> Path | None:
    """The run's evaluation report (the package's report-uri property), saved as <folder>/report.html."""
    package = aws.client("sagemaker").describe_model_package(ModelPackageName=package_arn)
    uri = package.get("CustomerMetadataProperties", {}).get("report-uri", "")
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.html"
    path.write_bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    return path


def package_metrics(aws: EmbeddedAws, package_arn: str) -> dict[str, float]:
    """The evaluation metrics the pipeline records on a model package ("metric:<name>" properties)."""
    package = aws.client("sagemaker").describe_model_package(ModelPackageName=package_arn)
    metrics = {}
    for key, value in package.get("CustomerMetadataProperties", {}).items():
        if key.startswith("metric:"):
            try:
                metrics[key.removeprefix("metric:")] = float(value)
            except ValueError:
                continue
    return metrics


def first_feature_row(csv_path: Path, target_column: str) -> tuple[list[str], str, str]:
    """(header without the target, one data row without the target as CSV text, that row's true label)."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        row = next(reader)
    index = header.index(target_column)
    features = [value for i, value in enumerate(row) if i != index]
    return [h for i, h in enumerate(header) if i != index], ",".join(features), row[index]


def invoke(aws: EmbeddedAws, endpoint_name: str, body: str) -> Any:
    response = aws.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint_name, ContentType="text/csv", Accept="application/json", Body=body.encode()
    )
    return json.loads(response["Body"].read())


def schedule_targets(aws: EmbeddedAws) -> list[tuple[str, str, str | None]]:
    """(rule, target function, target Input) of every schedule rule whose target is a stack function."""
    assert aws.deployment
    events = aws.client("events")
    stack_functions = set(aws.deployment.functions)
    found = []
    for page in events.get_paginator("list_rules").paginate():
        for rule in page["Rules"]:
            if not rule.get("ScheduleExpression"):
                continue
            for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                name = target["Arn"].rsplit(":function:", 1)[-1].split(":", 1)[0]
                if name in stack_functions:
                    found.append((rule["Name"], name, target.get("Input")))
    return found


def fire_schedule(
    aws_client: Callable[[str], Any], function_name: str, payload: str | None, dry_run: bool
) -> Any:
    """Invoke a schedule rule's target once with a Scheduled Event; dry_run sets DRY_RUN=true for the call."""
    lambda_client = aws_client("lambda")
    config = lambda_client.get_function_configuration(FunctionName=function_name)
    # str(): moto hands back values from Number parameters as numbers; update_function_configuration wants str
    variables = {k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()}
    event = payload or json.dumps(
        {
            "version": "0",
            "id": "offline-schedule",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": "us-east-1",
            "resources": [],
            "detail": {},
        }
    )
    if dry_run:
        lambda_client.update_function_configuration(
            FunctionName=function_name, Environment={"Variables": {**variables, "DRY_RUN": "true"}}
        )
    try:
        response = lambda_client.invoke(FunctionName=function_name, Payload=event.encode())
    finally:
        if dry_run:
            lambda_client.update_function_configuration(
                FunctionName=function_name, Environment={"Variables": variables}
            )
    body = response["Payload"].read()
    try:
        result = json.loads(body or b"null")
    except json.JSONDecodeError:
        result = body.decode(errors="replace")
    if response.get("FunctionError"):
        raise DemoFailed(f"{function_name} failed: {result}")
    return result


def describe_sweep(result: Any) -> list[str]:
    """Human lines for a cost guard sweep result (its summary dict, when it returns one)."""
    summaries = result if isinstance(result, list) else [result]
    lines = []
    for summary in summaries:
        if not isinstance(summary, dict):
            lines.append(f"    {summary}")
            continue
        kind = summary.get("kind", "resources")
        acted = summary.get("acted_on", [])
        counts = (
            ", ".join(f"{action} {n}" for action, n in summary.get("counts", {}).items()) or "nothing found"
        )
        lines.append(f"    {kind}: examined {summary.get('examined', '?')} ({counts})")
        lines.extend(f"      would {item['action']}: {item['name']} ({item['reason']})" for item in acted)
        lines.extend(
            f"      kept: {reason} (x{n})" for reason, n in summary.get("skipped_by_reason", {}).items()
        )
    return lines


def run_demo(stack_name: str = DEFAULT_STACK_NAME, build_dir: Path = DEFAULT_BUILD_DIR) -> int:
    started = time.monotonic()
    shutil.rmtree(DEMO_WORK_DIR, ignore_errors=True)
    DEMO_WORK_DIR.mkdir(parents=True)
    terminal = sys.stdout

    def emit(line: str) -> None:
        print(line, file=terminal, flush=True)

    template = _shown(build_dir / "template.yaml")
    emit(f"Deploying {template} as stack {stack_name} into an embedded AWS (moto)...")
    with DEMO_LOG.open("w", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
        try:
            aws = EmbeddedAws(build_dir=build_dir, stack_name=stack_name, work_dir=DEMO_WORK_DIR)
            aws.start()
        except DeployError as error:
            emit(f"DEPLOY FAILED: {error}")
            return 1
        except Exception as error:  # noqa: BLE001 - one line on the terminal, the traceback in the log
            traceback.print_exc()
            emit(f"DEPLOY FAILED: {type(error).__name__}: {error}\n  details: {_shown(DEMO_LOG)}")
            return 1
        try:
            return _run(aws, started, emit)
        except (DemoFailed, TimeoutError) as error:
            emit(f"\nRUN FAILED: {error}")
            return 1
        except Exception as error:  # noqa: BLE001 - the CLI reports any failure in one line, details in the log
            traceback.print_exc()  # into the log
            emit(f"\nDEMO ERROR: {type(error).__name__}: {error}\n  details: {_shown(DEMO_LOG)}")
            return 1
        finally:
            aws.stop()


def _run(aws: EmbeddedAws, started: float, emit: Callable[[str], None]) -> int:
    assert aws.deployment
    emit(f"  deployed in {time.monotonic() - started:.1f}s: {len(aws.deployment.resources)} resources")
    for line in aws.deployment.not_created:
        emit(f"  warning: moto's CloudFormation did not create {line}")
    run = _follow_run(aws, emit)
    _report_result(aws, run, emit)
    _run_cost_guard(aws, emit)
    emit(f"\nDemo finished in {time.monotonic() - started:.1f}s")
    return 0


def _follow_run(aws: EmbeddedAws, emit: Callable[[str], None]) -> dict[str, Any]:
    """Upload the sample dataset and print the run's states; the pipeline execution, or DemoFailed."""
    outputs = aws.outputs
    machines = stack_state_machines(aws)
    pipeline_arn = outputs.get("PipelineStateMachineArn")
    pipeline = next((label for label, arn in machines.items() if arn == pipeline_arn), None)
    if pipeline is None:
        raise DemoFailed(f"the stack has no PipelineStateMachineArn output (outputs: {sorted(outputs)})")
    upload_started = time.time()
    keys = upload_dataset(
        aws.client("s3"), outputs["InputBucketName"], DEMO_DATASET, SAMPLE_DATA / DEMO_DATASET
    )
    emit(f"\nUploaded {', '.join(keys)} to s3://{outputs['InputBucketName']}/; following the run:")
    run, follower = follow_executions(
        aws.client("stepfunctions"), machines, upload_started - 1, pipeline, RUN_TIMEOUT_SECONDS, emit
    )
    if run["status"] == "SUCCEEDED":
        return run
    first = follower.first_failure(run["executionArn"])
    final = follower.final_failure(run["executionArn"])
    lines = [f"execution {run['name']} ended {run['status']}"]
    if final:
        lines.append(f"  reported: {final.error}: {final.cause}")
    if first and first != final:
        lines.append(f"  first failure, in state {first.render()}")
    lines.append(f"  handler and job output: {_shown(DEMO_LOG)}")
    raise DemoFailed("\n".join(lines))


def _report_result(aws: EmbeddedAws, run: dict[str, Any], emit: Callable[[str], None]) -> None:
    """The metric, model package, endpoint and one real prediction."""
    output = parse_output(run)
    sagemaker = aws.client("sagemaker")
    package_arn = find_key(output, ["ModelPackageArn", "modelPackageArn"])
    if not package_arn:
        newest = newest_model_package(sagemaker)
        package_arn = newest["ModelPackageArn"] if newest else None
    endpoint = find_key(output, ["EndpointName", "endpointName"])
    if not endpoint:
        endpoints = sagemaker.list_endpoints(SortBy="CreationTime", SortOrder="Descending")["Endpoints"]
        endpoint = endpoints[0]["EndpointName"] if endpoints else None
    metrics = (
        (package_metrics(aws, package_arn) if package_arn else {}) or find_key(output, ["metrics"]) or {}
    )

    folder = SAMPLE_DATA / DEMO_DATASET
    config = json.loads((folder / "pipeline.json").read_text(encoding="utf-8"))
    header, row, truth = first_feature_row(folder / f"{DEMO_DATASET}.csv", config["target_column"])
    emit("\nResult")
    if isinstance(metrics, dict):
        emit("  metrics:       " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    emit(f"  model package: {package_arn}")
    report = download_report(aws, package_arn, DEMO_WORK_DIR / "report") if package_arn else None
    # The page embeds its plots: it opens offline in any browser.
    emit(f"  report:        {_shown(report) if report else 'none recorded on the package'}")
    emit(f"  endpoint:      {endpoint}")
    if not endpoint:
        raise DemoFailed("the run succeeded but no endpoint exists to invoke")
    prediction = invoke(aws, endpoint, row)
    features = " ".join(f"{name}={value}" for name, value in zip(header, row.split(","), strict=True))
    emit(f"  prediction:    {features} -> {describe_prediction(prediction)} (true label: {truth})")


def describe_prediction(response: Any) -> str:
    predictions = response.get("predictions") if isinstance(response, dict) else None
    if not predictions:
        return json.dumps(response)
    first = predictions[0]
    if "label" in first:
        probability = first.get("probabilities", {}).get(first["label"])
        return f"{first['label']}" + (f" (p={probability:.2f})" if isinstance(probability, float) else "")
    return json.dumps(first)


def _run_cost_guard(aws: EmbeddedAws, emit: Callable[[str], None]) -> None:
    targets = schedule_targets(aws)
    if not targets:
        return
    emit("\nCost guard, once, dry run (nothing is stopped or deleted):")
    for rule, function, payload in targets:
        emit(f"  rule {rule} -> {function}")
        for line in describe_sweep(fire_schedule(aws.client, function, payload, dry_run=True)):
            emit(line)
