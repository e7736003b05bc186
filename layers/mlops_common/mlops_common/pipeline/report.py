"""What a run's notification says: the outcome, the facts, and on failure the failing step and its cause.

Causes come from three places: a Catch (``$.error`` with Error/Cause, where Cause may be a Lambda error, a
Describe*Job output from a ``.sync`` job, or a nested execution's description), a job that ended without
``Completed`` (its Describe output is in the state), or the quality gate's reason.

A failed job's own words: a processing job's ExitMessage is the first KB of /opt/ml/output/message, which the
recipe writes (AWS then sets FailureReason to a generic "AlgorithmError: See job logs ..."). A training job
has no such file: the scikit-learn container's ``train`` command rewrites /opt/ml/output/failure with its own
traceback (``ExecuteUserScriptError ... ErrorMessage ""``), so the recipe's line is read back from the tail of
the job's CloudWatch log (``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-1-<epoch>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

EVENT_SOURCE = "mlops.pipeline"
SUCCEEDED = "Pipeline Run Succeeded"
FAILED = "Pipeline Run Failed"
DEPLOYED = "Model Deployment Succeeded"
DEPLOY_FAILED = "Model Deployment Failed"
# Where each step keeps its result in the pipeline's state.
STEP_RESULTS = {"ProcessData": "process", "TrainModel": "train", "EvaluateModel": "evaluate"}
ENDPOINT_STEPS = (
    "EndpointRolledBack",
    "EndpointFailed",
    "EndpointRollingBack",
    "EndpointUpdateRollbackFailed",
    "EndpointOutOfService",
    "EndpointTimedOut",
)
# Errors the state machines raise around a SageMaker job (statemachines/*.asl.json): the Cause is the job's
# Describe output or SageMaker's error, named here like the job's own status.
WRAPPED_JOB_ERRORS = ("SageMakerJobEnded", "TransientSageMakerError")
_JOB_KINDS = {"TrainingJobStatus": "Training", "ProcessingJobStatus": "Processing"}
JOB_LOG_GROUPS = {"Training": "/aws/sagemaker/TrainingJobs", "Processing": "/aws/sagemaker/ProcessingJobs"}
# How many of the last log lines to search for the recipe's own failure line.
LOG_TAIL_LINES = 200
# What the container's toolkits say about a failed script (they wrap it; they do not carry its message).
_TOOLKIT_WRAPPERS = ("ExecuteUserScriptError", "framework error", "See job logs")
_ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception)): \S")
# Reads the last lines of a job's log: (kind "Training"/"Processing", job name) -> lines, oldest first.
LogTail = Callable[[str, str], list[str]]


def _maybe_json(text: Any) -> Any:
    if isinstance(text, str) and text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def job_cause(describe: dict[str, Any], log_tail: LogTail | None = None) -> str | None:
    """'Training job X Failed: <the recipe's message>' / '... Stopped: MaxRuntimeExceeded'; None if no job.

    The message is the job's ExitMessage, else its FailureReason; when that is only the toolkit's wrapper (or
    absent), the recipe's failure line from the tail of the job's log (``log_tail``) leads, the kept reason
    follows in parentheses.
    """
    for status_key, kind in _JOB_KINDS.items():
        if status_key in describe:
            status = describe[status_key]
            name = describe.get("TrainingJobName") or describe.get("ProcessingJobName") or "?"
            reason = describe.get("ExitMessage") or describe.get("FailureReason")
            if status == "Stopped":
                # A job that hits MaxRuntimeInSeconds ends Stopped, not Failed.
                detail = describe.get("SecondaryStatus")
                detail = detail if detail and detail != "Stopped" else "MaxRuntimeExceeded"
                return f"{kind} job {name} Stopped: {detail}" + (f" ({reason})" if reason else "")
            if status == "Failed" and log_tail is not None and _lacks_recipe_message(reason):
                from_log = recipe_failure_line(_safe_tail(log_tail, kind, name))
                if from_log:
                    kept = f" (FailureReason: {_one_line(reason)[:300]})" if reason else ""
                    return f"{kind} job {name} {status}: {from_log}{kept}"
            return f"{kind} job {name} {status}: {reason or 'no FailureReason given'}"
    return None


def _lacks_recipe_message(reason: str | None) -> bool:
    return not reason or any(wrapper in reason for wrapper in _TOOLKIT_WRAPPERS)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _safe_tail(log_tail: LogTail, kind: str, name: str) -> list[str]:
    # The log is a better cause, not a required one: a notification must go out even if it cannot be read.
    try:
        return log_tail(kind, name)
    except Exception:  # noqa: BLE001 - any failure to read the log leaves the kept reason as the cause
        return []


def recipe_failure_line(lines: list[str]) -> str | None:
    """The recipe's own failure line in a job's log: its last ``DatasetError: ...`` line, else the last
    ``<Something>Error: ...`` line that is not the container toolkit's wrapper around the script's exit."""
    candidates = [line.strip() for line in lines if _ERROR_LINE.match(line.strip())]
    candidates = [line for line in candidates if not any(w in line for w in _TOOLKIT_WRAPPERS)]
    for line in reversed(candidates):
        if line.startswith("DatasetError: "):
            return line
    return candidates[-1] if candidates else None


def cloudwatch_log_tail(logs: Any, max_lines: int = LOG_TAIL_LINES) -> LogTail:
    """A LogTail over CloudWatch Logs: the newest stream of the job (``<job>/algo-1-<epoch>``), last lines."""

    def tail(kind: str, job_name: str) -> list[str]:
        streams = logs.describe_log_streams(
            logGroupName=JOB_LOG_GROUPS[kind], logStreamNamePrefix=f"{job_name}/"
        ).get("logStreams", [])
        lines: list[str] = []
        for stream in streams:
            events = logs.get_log_events(
                logGroupName=JOB_LOG_GROUPS[kind],
                logStreamName=stream["logStreamName"],
                startFromHead=False,
                limit=max_lines,
            )["events"]
            lines += [event["message"] for event in events]
        return lines

    return tail


def job_error(describe: dict[str, Any]) -> str:
    """'TrainingJobStopped', 'ProcessingJobFailed': Fail states may not use the reserved 'States.' prefix."""
    for status_key, kind in _JOB_KINDS.items():
        if status_key in describe:
            return f"{kind}Job{describe[status_key]}"
    return "JobFailed"


def explain(error: str, cause: Any, log_tail: LogTail | None = None) -> tuple[str, str]:
    """(error name, human cause) from a Catch's Error and Cause."""
    parsed = _maybe_json(cause)
    if isinstance(parsed, dict):
        if "errorMessage" in parsed:  # a Lambda function's exception
            return str(parsed.get("errorType") or error), str(parsed["errorMessage"])
        from_job = job_cause(parsed, log_tail)
        if from_job:
            generic = error.startswith("States.") or error in WRAPPED_JOB_ERRORS
            return job_error(parsed) if generic else error, from_job
        if "executionArn" in parsed and ("cause" in parsed or "error" in parsed):  # a nested execution
            return explain(str(parsed.get("error") or error), parsed.get("cause") or "", log_tail)
        if "Error" in parsed and "Cause" in parsed:
            return explain(str(parsed["Error"]), parsed["Cause"], log_tail)
    return error, str(cause) if cause not in (None, "") else "no cause recorded"


def endpoint_cause(step: str, state: dict[str, Any]) -> str:
    endpoint = state["endpoint"]
    name = endpoint.get("EndpointName") or (state.get("deploy") or {}).get("endpointName")
    wanted = (state.get("endpointConfig") or {}).get("name")
    if step == "EndpointRolledBack":
        return (
            f"the update of {name} was rolled back: it still serves {endpoint.get('EndpointConfigName')}, "
            f"not {wanted} (a rollback alarm fired or the new fleet failed)"
        )
    status, reason = endpoint.get("EndpointStatus"), endpoint.get("FailureReason") or "no FailureReason given"
    if step == "EndpointFailed":
        return f"endpoint {name} Failed: {reason}"
    if step == "EndpointRollingBack":
        return f"the update of {name} is being rolled back (RollingBack: {reason}); {wanted} will not serve"
    if step == "EndpointUpdateRollbackFailed":
        return (
            f"endpoint {name} is UpdateRollbackFailed ({reason}): the rollback of the update failed and the "
            f"endpoint needs a person: update it to a working endpoint config (aws sagemaker update-endpoint "
            f"--endpoint-name {name} --endpoint-config-name <config>) or delete it"
        )
    if step == "EndpointOutOfService":
        return f"endpoint {name} is OutOfService ({reason}): it takes no requests; {wanted} does not serve"
    polls = (state.get("poll") or {}).get("count")
    return f"endpoint {name} still {status} after {polls} checks"


def failure(state: dict[str, Any], log_tail: LogTail | None = None) -> dict[str, str]:
    """{step, error, cause} for a failed run; ``log_tail`` reads a failed job's log for the recipe's line."""
    step = state.get("failedStep") or "Unknown"
    caught = state.get("error")
    if isinstance(caught, dict) and ("Error" in caught or "Cause" in caught):
        error, cause = explain(str(caught.get("Error") or "States.TaskFailed"), caught.get("Cause"), log_tail)
    elif step == "QualityGate" and isinstance(state.get("gate"), dict):
        error, cause = "QualityGateRejected", str(state["gate"].get("reason"))
    elif isinstance(state.get(STEP_RESULTS.get(step, "")), dict):
        describe = state[STEP_RESULTS[step]]
        error = job_error(describe)
        cause = job_cause(describe, log_tail) or json.dumps(describe, default=str)[:1000]
    elif isinstance(state.get("endpoint"), dict) and step in ENDPOINT_STEPS:
        error, cause = step, endpoint_cause(step, state)
    else:
        error, cause = "Unknown", "the run failed without a recorded cause"
    if error.startswith("States."):  # reserved for Step Functions: a Fail state may not use it
        error = f"{step}Failed" if step != "Unknown" else error.replace("States.", "", 1)
    if step == "SmokeTest":
        cause += restore_note(state)
    return {"step": step, "error": error, "cause": cause}


def restore_note(state: dict[str, Any]) -> str:
    """What the deploy machine did with an endpoint that answered wrongly (RestorePreviousModel)."""
    deployment = state.get("deploy") or {}
    previous, endpoint = deployment.get("previousConfig"), deployment.get("endpointName")
    if "restored" in state:
        return f"; {endpoint} is going back to its previous endpoint config {previous}"
    if isinstance(state.get("restoreError"), dict):
        _, why = explain(str(state["restoreError"].get("Error")), state["restoreError"].get("Cause"))
        return f"; switching {endpoint} back to {previous} failed ({why}): it still serves the new model"
    if deployment and not previous:
        return f"; {endpoint} is new and serves this model until the next deployment or its deletion"
    return ""


def _seconds(start: Any, end: Any) -> float | None:
    def parse(value: Any) -> datetime | None:
        if isinstance(value, int | float):
            # Step Functions hands SageMaker timestamps over as epoch milliseconds.
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
        return None

    begin, finish = parse(start), parse(end)
    if begin is None or finish is None:
        return None
    if (begin.tzinfo is None) != (finish.tzinfo is None):
        begin, finish = begin.replace(tzinfo=None), finish.replace(tzinfo=None)
    return max(0.0, (finish - begin).total_seconds())


def step_durations(state: dict[str, Any]) -> dict[str, float]:
    """Seconds per SageMaker job step, from the Describe*Job outputs the .sync tasks returned."""
    durations = {}
    for step, key in STEP_RESULTS.items():
        describe = state.get(key)
        if not isinstance(describe, dict):
            continue
        if "TrainingTimeInSeconds" in describe:
            durations[step] = float(describe["TrainingTimeInSeconds"])
            continue
        start = describe.get("ProcessingStartTime") or describe.get("TrainingStartTime")
        end = describe.get("ProcessingEndTime") or describe.get("TrainingEndTime")
        seconds = _seconds(start, end)
        if seconds is not None:
            durations[step] = seconds
    return durations


def _evaluated(state: dict[str, Any]) -> bool:
    evaluation = state.get("evaluate")
    return isinstance(evaluation, dict) and evaluation.get("ProcessingJobStatus") == "Completed"


def summary(state: dict[str, Any]) -> dict[str, Any]:
    """The facts every notification carries."""
    run = state.get("run") or {}
    gate = state.get("gate") or {}
    registration = state.get("registration") or {}
    return {
        "dataset": run.get("dataset") or state.get("dataset"),
        "runId": run.get("runId") or state.get("runId"),
        # The run's input manifest: every object version the run read.
        "manifest": (run.get("source") or {}).get("manifest") or state.get("manifest"),
        "metrics": gate.get("metrics"),
        "gate": gate.get("reason"),
        "modelPackageArn": registration.get("modelPackageArn"),
        "approvalStatus": registration.get("approvalStatus"),
        "endpointName": (run.get("names") or {}).get("endpoint"),
        # The evaluation report (report.html, self-contained), once the evaluation job has written it.
        "report": (run.get("paths") or {}).get("report") if _evaluated(state) else None,
        **stage_summary(state),
    }


def _deployed(result: Any) -> dict[str, Any]:
    """The deploy workflow's output in a pipeline state (a startExecution.sync:2 result), or {}."""
    output = result.get("output") if isinstance(result, dict) else None
    return output if isinstance(output, dict) and output.get("outcome") == "deployed" else {}


def stage_summary(state: dict[str, Any]) -> dict[str, Any]:
    """Stages=staging-prod: where the run's model stands on staging and on prod (docs/stages.md); {} else."""
    stages = (state.get("run") or {}).get("stages") or {}
    if stages.get("mode") != "staging-prod":
        return {}
    endpoints = stages.get("endpoints") or {}
    staged, promoted = _deployed(state.get("deployment")), _deployed(state.get("promotion"))
    failed_step = state.get("failedStep")
    soak = state.get("soak") if isinstance(state.get("soak"), dict) else None
    if staged:
        staging_status = "soak failed" if failed_step == "CheckStagingSoak" else "serving"
    else:
        staging_status = "failed" if failed_step == "DeployModel" else "not deployed"
    if promoted:
        prod_status = "serving"
    elif failed_step == "PromoteToProd":
        prod_status = "promotion failed"
    elif staged and soak is not None:
        prod_status = "awaiting promotion"
    else:
        prod_status = "not promoted"
    return {
        "stages": {
            "staging": {
                "endpointName": endpoints.get("staging"),
                "status": staging_status,
                "modelPackageArn": staged.get("modelPackageArn"),
                "soak": {"seconds": stages.get("soakSeconds"), "errors": soak.get("errors")}
                if soak
                else None,
            },
            "prod": {
                "endpointName": endpoints.get("prod"),
                "status": prod_status,
                "modelPackageArn": promoted.get("modelPackageArn"),
            },
            "promotion": stages.get("promotion"),
        }
    }


def promote_command(state: dict[str, Any], stack_name: str) -> str:
    """The operator's command that promotes a staged run's model to prod."""
    dataset = (state.get("run") or {}).get("dataset") or "<dataset>"
    return f"mlops --stack {stack_name} promote {dataset}"


def reported_by_deploy(state: dict[str, Any]) -> bool:
    """A deployment a person started (approval, rollback, `mlops promote`) is reported by the deploy workflow;
    one a run started (its own deploy, an automatic promotion) by the run."""
    if state.get("source") in ("approval", "rollback"):
        return True
    return state.get("source") == "promotion" and "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID" not in state


# ---------------------------------------------------------------- where to look next (failure notifications)

_JOB_PAGES = {"training": "jobs", "processing": "processing-jobs"}
_JOB_LOG_GROUPS = {"training": "/aws/sagemaker/TrainingJobs", "processing": "/aws/sagemaker/ProcessingJobs"}


def failed_job(state: dict[str, Any], step: str) -> tuple[str, str] | None:
    """(kind, job name) of the SageMaker job a failed step ran: from the caught cause or the step's result."""
    candidates: list[Any] = []
    caught = state.get("error")
    if isinstance(caught, dict):
        candidates.append(_maybe_json(caught.get("Cause")))
    candidates.append(state.get(STEP_RESULTS.get(step, "")))
    for describe in candidates:
        if isinstance(describe, dict):
            if describe.get("TrainingJobName"):
                return "training", str(describe["TrainingJobName"])
            if describe.get("ProcessingJobName"):
                return "processing", str(describe["ProcessingJobName"])
    return None


def _console_fragment(text: str) -> str:
    """The CloudWatch console's own escaping in its #logsV2 fragment: URL-encoded twice, '%' written '$'."""
    from urllib.parse import quote  # noqa: PLC0415 - failure path only

    return quote(quote(text, safe=""), safe="").replace("%", "$")


def where_to_look(
    state: dict[str, Any], step: str, *, stack_name: str, region: str, execution_arn: str | None
) -> dict[str, Any]:
    """The `mlops logs` command and the console pages (execution, job, job log streams) of a failed run."""
    run_id = (state.get("run") or {}).get("runId") or state.get("runId") or "<run>"
    command = f"mlops --stack {stack_name} --region {region} logs {run_id}"
    if step and step != "Unknown":
        command += f" --step {step}"
    console = f"https://{region}.console.aws.amazon.com"
    links: dict[str, str] = {}
    if execution_arn:
        links["execution"] = f"{console}/states/home?region={region}#/v2/executions/details/{execution_arn}"
    job = failed_job(state, step)
    if job:
        kind, name = job
        links["jobPage"] = f"{console}/sagemaker/home?region={region}#/{_JOB_PAGES[kind]}/{name}"
        group = _console_fragment(_JOB_LOG_GROUPS[kind])
        links["jobLogStreams"] = (
            f"{console}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{group}"
            f"$3FlogStreamNameFilter$3D{_console_fragment(name)}"
        )
    return {"logsCommand": command, "consoleLinks": links}
