"""Every kind of data the default recipe trains, one run after another offline (figures printed only).

    make build && .venv/bin/python bench/model_kinds.py

The datasets are the end-to-end tests' (tests/e2e/test_model_kinds.py): string categories with missing values,
a regression, the seed's JSON Lines text shape, .txt class folders and digits PNG class folders. For each it
prints the run's wall time from its execution, the evaluated metric on the test split, and the sizes of
model.tar.gz and report.html in the buckets.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offline.embedded import EmbeddedAws  # noqa: E402
from tests.e2e.test_model_kinds import UPLOADS  # noqa: E402 - the tests' datasets, one source

KINDS = {
    "e2e-cat": "tabular, string categories and missing values",
    "e2e-reg": "tabular regression",
    "e2e-jsonl": "text, JSON Lines",
    "e2e-txt": "text, .txt class folders",
    "e2e-digits": "images, PNG class folders (300)",
}


def object_size(aws: EmbeddedAws, uri: str) -> int:
    parsed = urlparse(uri)
    return int(
        aws.client("s3").head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["ContentLength"]
    )


def run_one(aws: EmbeddedAws, dataset: str) -> dict[str, Any]:
    since = time.time() - 1
    UPLOADS[dataset](aws)
    aws.state.registry.wait_for_async_invocations(timeout=60)
    [run] = aws.wait_for_executions(aws.outputs["PipelineStateMachineArn"], 1, 600.0, since)
    if run["status"] != "SUCCEEDED":
        return {"dataset": dataset, "status": run["status"]}
    output = json.loads(run["output"])
    metrics = output["gate"]["metrics"]
    metric = "accuracy" if "accuracy" in metrics else "rmse"
    return {
        "dataset": dataset,
        "status": run["status"],
        "seconds": (run["stopDate"] - run["startDate"]).total_seconds(),
        "metric": f"{metric} {metrics[metric]:.3g}",
        "model": object_size(aws, output["train"]["ModelArtifacts"]["S3ModelArtifacts"]),
        "report": object_size(aws, output["run"]["paths"]["report"]),
    }


def main() -> None:
    with EmbeddedAws() as aws:
        results = [run_one(aws, dataset) for dataset in UPLOADS]
    print("\n| data | run s | test metric | model.tar.gz KB | report.html KB |")
    print("|---|---:|---|---:|---:|")
    for result in results:
        kind = KINDS.get(result["dataset"], result["dataset"])
        if result["status"] != "SUCCEEDED":
            print(f"| {kind} | {result['status']} | | | |")
            continue
        print(
            f"| {kind} | {result['seconds']:.1f} | {result['metric']} | {result['model'] / 1024:.0f} | "
            f"{result['report'] / 1024:.0f} |"
        )


if __name__ == "__main__":
    main()
