"""The trigger under a folder sync: N files straight under training/<dataset>/, no marker (figures printed,
not asserted).

    make build && .venv/bin/python bench/trigger_events.py [--files N]

Deploys the stack into the embedded AWS and writes N small CSV files (one iris row each) as `aws s3 sync`
would, then prints: the runs started; seconds from the last upload to the run's start (the quiet time is the
stack's DatasetQuietSeconds, 3 s offline); the trigger's cost per S3 event (this process's CPU time while
the events are handled, and the start-run function's DynamoDB calls); the run's state transitions (history
events that enter a state); and the S3 requests the run makes through the AWS API, by operation. The jobs'
own reads of their inputs happen inside SageMaker on AWS and in the job runner here; they are not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/mlops_common")]

import botocore.client  # noqa: E402

from offline.embedded import EmbeddedAws, list_executions  # noqa: E402

DATASET = "bench-sync"
SAMPLE = ROOT / "offline" / "sample_data" / "iris"


class ApiCalls:
    """Counts every AWS API call made through botocore in this process (handlers, Step Functions' aws-sdk
    tasks, this script), by service and operation, while `recording` is set."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.recording = False
        self._lock = threading.Lock()
        original = botocore.client.BaseClient._make_api_call
        calls = self

        def counted(client: Any, operation: str, params: Any) -> Any:
            if calls.recording:
                with calls._lock:
                    calls.counts[(client.meta.service_model.service_name, operation)] += 1
            return original(client, operation, params)

        botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]

    def start(self) -> None:
        self.counts.clear()
        self.recording = True

    def stop(self) -> Counter[tuple[str, str]]:
        self.recording = False
        return Counter(self.counts)


def state_transitions(sfn: Any, execution_arn: str) -> int:
    return sum(
        1
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        for event in page["events"]
        if event["type"].endswith("StateEntered")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    header, *rows = (SAMPLE / "iris.csv").read_text().splitlines()
    calls = ApiCalls()

    with EmbeddedAws() as aws:
        s3, bucket = aws.client("s3"), aws.outputs["InputBucketName"]
        config = {**json.loads((SAMPLE / "pipeline.json").read_text()), "approval_mode": "manual"}
        s3.put_object(Bucket=bucket, Key=f"training/{DATASET}/pipeline.json", Body=json.dumps(config))
        aws.state.registry.wait_for_async_invocations(timeout=60)
        since = time.time() - 0.5

        calls.start()
        cpu, wall = time.process_time(), time.monotonic()
        for i in range(args.files):
            body = f"{header}\n{rows[i % len(rows)]}\n"
            s3.put_object(Bucket=bucket, Key=f"training/{DATASET}/part-{i:05d}.csv", Body=body)
        last_upload = time.time()
        aws.state.registry.wait_for_async_invocations(timeout=600)
        handled_cpu, handled_wall = time.process_time() - cpu, time.monotonic() - wall
        during_uploads = calls.stop()

        sfn = aws.client("stepfunctions")
        deadline = time.monotonic() + 600
        while not (runs := list_executions(sfn, aws.outputs["PipelineStateMachineArn"], since)):
            if time.monotonic() > deadline:
                raise SystemExit("no run started within 10 minutes")
            time.sleep(0.05)
        calls.start()
        [run] = aws.wait_for_executions(aws.outputs["PipelineStateMachineArn"], 1, 600, since)
        during_run = calls.stop()
        time.sleep(5)  # a second run would start within the quiet time
        runs = list_executions(sfn, aws.outputs["PipelineStateMachineArn"], since)
        waiters = list_executions(sfn, aws.outputs["BatchWaiterStateMachineArn"], since)

        dynamodb_writes = sum(n for (service, op), n in during_uploads.items() if service == "dynamodb")
        s3_by_operation = {op: n for (service, op), n in during_run.most_common() if service == "s3"}
        print(f"files uploaded:                  {args.files} (no marker)")
        print(f"runs started:                    {len(runs)} ({run['status']})")
        print(f"batch waiters started:           {len(waiters)}")
        print(f"last upload -> run start:        {run['startDate'].timestamp() - last_upload:.2f} s")
        print(f"events handled in:               {handled_wall:.1f} s wall")
        print(f"CPU per S3 event (this process): {1000 * handled_cpu / args.files:.1f} ms")
        print(f"DynamoDB calls per S3 event:     {dynamodb_writes / args.files:.2f}")
        run_seconds = (run["stopDate"] - run["startDate"]).total_seconds()
        print(f"run wall time:                   {run_seconds:.1f} s")
        print(f"state transitions of the run:    {state_transitions(sfn, run['executionArn'])}")
        print(f"S3 API requests of the run:      {sum(s3_by_operation.values())} {s3_by_operation}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
