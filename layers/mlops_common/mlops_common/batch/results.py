"""What a finished batch produced, and the notification that says so.

The transform job writes one ``<file>.out`` per input file, each line the input record followed by
``,<prediction>`` (JoinSource Input). A record the model could not read ends in ``"ERROR: <reason>"``
(recipe/batch_inference.py); a header line ends in ``prediction``. The line numbers reported are those of the
input file as uploaded (blank lines are not records but keep their numbers).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_common.pipeline import report
from mlops_common.step_values import BatchState, PreparedBatch

SUCCEEDED = "Batch Predictions Succeeded"
REFUSED = "Batch Predictions Refused"
FAILED = "Batch Predictions Failed"
ERROR_PREFIX = "ERROR: "  # recipe/batch_inference.py's marker
HEADER_ANSWER = "prediction"
SUMMARY_FILE = "_batch.json"
# A notification lists this many unreadable rows; the summary file in the output folder has all of them.
MAX_LISTED = 20


class OutputMismatch(RuntimeError):
    """An output file does not line up with its input file."""


@dataclass
class BadRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.reason}"


@dataclass
class BatchResult:
    files: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    predicted: int = 0
    bad: list[BadRow] = field(default_factory=list)


def _records(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every non-empty line: the records Batch Transform's SplitType Line sends."""
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _last_field(line: str) -> str:
    cells = next(csv.reader([line]), [""])
    return cells[-1] if cells else ""


def compare(source_key: str, input_text: str, output_text: str) -> tuple[int, int, list[BadRow]]:
    """(rows, predicted rows, unreadable rows) of one file; OutputMismatch when the two do not line up."""
    records, outputs = _records(input_text), [line for line in output_text.splitlines() if line.strip()]
    if len(records) != len(outputs):
        raise OutputMismatch(
            f"{source_key}: {len(records)} input record(s) but {len(outputs)} output line(s)"
        )
    rows = predicted = 0
    bad = []
    for (number, record), output in zip(records, outputs, strict=True):
        if not output.startswith(record + ","):
            raise OutputMismatch(f"{source_key} line {number}: the output line does not start with its input")
        answer = _last_field(output[len(record) + 1 :])
        if answer == HEADER_ANSWER:
            continue
        rows += 1
        if answer.startswith(ERROR_PREFIX):
            bad.append(BadRow(source_key, number, answer[len(ERROR_PREFIX) :]))
        else:
            predicted += 1
    return rows, predicted, bad


def _read(s3: Any, bucket: str, key: str) -> str:
    text: str = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
    return text


def collect(s3: Any, prepared: PreparedBatch) -> BatchResult:
    """Compare every input file with its output file and write the batch summary next to the outputs."""
    bucket = prepared["outputBucket"]
    output_prefix = prepared["outputUri"].removeprefix(f"s3://{bucket}/")
    result = BatchResult()
    for item in prepared["inputs"]:
        output_key = f"{output_prefix}{item['relative']}.out"
        rows, predicted, bad = compare(
            item["key"], _read(s3, bucket, item["copy"]), _read(s3, bucket, output_key)
        )
        result.files.append(
            {
                "input": item["key"],
                "versionId": item.get("versionId"),
                "predictions": f"s3://{bucket}/{output_key}",
                "rows": rows,
                "unreadableRows": len(bad),
            }
        )
        result.rows += rows
        result.predicted += predicted
        result.bad.extend(bad)
    summary = {
        **_identity(prepared),
        **_counts(result),
        "files": result.files,
        "unreadable": [asdict(b) for b in result.bad],
    }
    s3.put_object(
        Bucket=bucket,
        Key=f"{output_prefix}{SUMMARY_FILE}",
        Body=json.dumps(summary, indent=2).encode(),
        ContentType="application/json",
    )
    return result


def _identity(prepared: Mapping[str, Any]) -> dict[str, Any]:
    model = prepared.get("model") or {}
    return {
        "dataset": prepared.get("dataset"),
        "batchId": prepared.get("batchId"),
        "input": prepared.get("inputPrefix"),
        "predictions": prepared.get("outputUri"),
        "modelPackageArn": model.get("packageArn"),
        "model": model.get("source"),
    }


def _counts(result: BatchResult) -> dict[str, Any]:
    return {"rows": result.rows, "predictedRows": result.predicted, "unreadableRows": len(result.bad)}


def succeeded_message(prepared: PreparedBatch, result: BatchResult) -> tuple[str, dict[str, Any]]:
    message = {
        "outcome": "predicted",
        **_identity(prepared),
        **_counts(result),
        "files": result.files,
        "unreadable": [str(b) for b in result.bad[:MAX_LISTED]],
        "summary": f"{prepared['outputUri']}{SUMMARY_FILE}",
    }
    if len(result.bad) > MAX_LISTED:
        message["unreadableNote"] = f"{len(result.bad) - MAX_LISTED} more in {message['summary']}"
    if prepared.get("skipped"):
        message["skipped"] = {"files": prepared["skipped"], "reason": "batch predictions read .csv files"}
    bad = f", {len(result.bad)} unreadable" if result.bad else ""
    subject = f"Batch predicted: {prepared['dataset']}/{prepared['batchId']} ({result.predicted} rows{bad})"
    return subject, message


def refused_message(prepared: PreparedBatch) -> tuple[str, dict[str, Any]]:
    message = {"outcome": "refused", **_identity(prepared), "reason": prepared["reason"]}
    return f"Batch refused: {prepared['dataset']}/{prepared['batchId']}", message


def transform_cause(cause: Any) -> str | None:
    """'Transform job X Failed: <reason>' from a .sync task's Cause (the DescribeTransformJob output)."""
    try:
        described = json.loads(cause) if isinstance(cause, str) else cause
    except json.JSONDecodeError:
        return None
    if isinstance(described, dict) and "TransformJobStatus" in described:
        reason = described.get("FailureReason") or "no FailureReason given"
        return (
            f"Transform job {described.get('TransformJobName')} {described['TransformJobStatus']}: {reason}"
        )
    return None


def failed_message(state: BatchState) -> tuple[str, dict[str, Any]]:
    error: Mapping[str, Any] = state.get("error") or {}
    step = state.get("failedStep", "unknown step")
    name, cause = report.explain(str(error.get("Error", "BatchFailed")), error.get("Cause"))
    cause = transform_cause(error.get("Cause")) or cause
    if name.startswith("States.") or name in report.WRAPPED_JOB_ERRORS:
        name = "TransformJobFailed" if step == "RunTransform" else "BatchFailed"
    prepared = state.get("prepared") or {"dataset": state.get("dataset"), "batchId": state.get("batchId")}
    message = {"outcome": "failed", **_identity(prepared), "step": step, "error": name, "cause": cause}
    return f"Batch failed at {step}: {prepared.get('dataset')}/{prepared.get('batchId')}", message
