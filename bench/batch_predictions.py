"""Batch predictions offline: a 10,000-row CSV under inference/<dataset>/ (figures printed, not asserted).

    make build && .venv/bin/python bench/batch_predictions.py [--rows N] [--bad-rows N]

Deploys the stack into the embedded AWS, trains the iris sample once (a pipeline run), then uploads one CSV
of N iris rows (N - bad rows readable, the others with a text value) and prints: the batch's wall time from
upload to the end of its execution, its state transitions (history events that enter a state), the transform
job's own time, and the rows predicted and reported unreadable. Offline the model server runs on this
machine's Python.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/mlops_common")]

from offline.embedded import EmbeddedAws, list_executions  # noqa: E402

DATASET = "bench-iris"
SAMPLE = ROOT / "offline" / "sample_data" / "iris"


def train(aws: EmbeddedAws) -> float:
    started = time.monotonic()
    s3, bucket = aws.client("s3"), aws.outputs["InputBucketName"]
    s3.put_object(
        Bucket=bucket, Key=f"training/{DATASET}/pipeline.json", Body=(SAMPLE / "pipeline.json").read_bytes()
    )
    since = time.time() - 1
    s3.upload_file(str(SAMPLE / "iris.csv"), bucket, f"training/{DATASET}/iris.csv")
    aws.state.registry.wait_for_async_invocations(timeout=60)
    [run] = aws.wait_for_executions(aws.outputs["PipelineStateMachineArn"], 1, 600, since)
    if run["status"] != "SUCCEEDED":
        raise SystemExit(f"training run {run['status']}")
    return time.monotonic() - started


def rows_body(rows: int, bad: int) -> str:
    with (SAMPLE / "iris.csv").open() as handle:
        flowers = [row[:4] for row in list(csv.reader(handle))[1:]]
    rng = random.Random(7)
    lines = ["sepal_length,sepal_width,petal_length,petal_width"]
    bad_at = set(rng.sample(range(rows), bad))
    for i in range(rows):
        row = list(rng.choice(flowers))
        if i in bad_at:
            row[1] = "n/a?"
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--bad-rows", type=int, default=10)
    args = parser.parse_args()
    with EmbeddedAws() as aws:
        print(f"training run: {train(aws):.1f} s")
        body = rows_body(args.rows, args.bad_rows)
        arn = aws.outputs["BatchStateMachineArn"]
        since = time.time() - 1
        started = time.monotonic()
        aws.client("s3").put_object(
            Bucket=aws.outputs["InputBucketName"], Key=f"inference/{DATASET}/rows.csv", Body=body.encode()
        )
        aws.state.registry.wait_for_async_invocations(timeout=60)
        [execution] = aws.wait_for_executions(arn, 1, 900, since)
        elapsed = time.monotonic() - started
        sfn = aws.client("stepfunctions")
        history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        entered = [e for e in history if e["type"].endswith("StateEntered")]
        output = json.loads(
            sfn.describe_execution(executionArn=execution["executionArn"]).get("output") or "{}"
        )
        transform = output.get("transform", {})
        job_seconds = (transform.get("endTime", 0) - transform.get("startTime", 0)) / 1000
        notification = output.get("notification", {})
        print(
            f"batch of {args.rows} rows ({args.bad_rows} unreadable): {execution['status']} {elapsed:.1f} s"
        )
        kinds = ", ".join(e["type"].removesuffix("StateEntered") for e in entered)
        print(f"  state transitions: {len(entered)} ({kinds})")
        print(f"  transform job: {job_seconds:.1f} s")
        print(
            f"  rows: {notification.get('rows')}, predicted: {notification.get('predictedRows')}, "
            f"unreadable: {notification.get('unreadableRows')}"
        )
        print(f"  executions: {len(list_executions(sfn, arn))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
