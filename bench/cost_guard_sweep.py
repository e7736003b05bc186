"""Cost guard sweep benchmark in moto: 1,000 endpoints and 500 notebooks (figures printed, not asserted).

    .venv/bin/python bench/cost_guard_sweep.py [--endpoints N] [--notebooks N] [--variants-per-endpoint N]

Prints, per sweep: API calls by operation (GetMetricData is the one the sweep's design bounds: at most
ceil(queries / 500) per window, one query per production variant or notebook), wall time, and the peak
Python memory during the sweep measured with tracemalloc. Each sweep runs twice on a fresh moto state: once
timed, once under tracemalloc (which slows Python down several times). moto runs in the same process, so both
figures include moto's own work for every call; on AWS the sweep is dominated by API latency instead.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers/mlops_common")]

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.sagemaker.models import sagemaker_backends  # noqa: E402

from mlops_common.cost_guard.endpoints import sweep_endpoints  # noqa: E402
from mlops_common.cost_guard.notebooks import sweep_notebooks  # noqa: E402
from mlops_common.cost_guard.settings import (  # noqa: E402
    HEARTBEAT_DIMENSION,
    HEARTBEAT_METRIC,
    HEARTBEAT_NAMESPACE,
    CommonSettings,
    EndpointSettings,
    NotebookSettings,
    parse_office_hours,
)
from mlops_common.cost_guard.summary import SweepSummary  # noqa: E402

REGION = "us-east-1"
ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sagemaker"
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
BUCKET = "bench-models"


def count_calls(*clients: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    for client in clients:
        service = client.meta.service_model.service_name

        def record(model: Any, service: str = service, **_: Any) -> None:
            calls[f"{service}:{model.name}"] += 1

        client.meta.events.register("before-call.*.*", record)
    return calls


def put_metrics(cloudwatch: Any, namespace: str, data: list[dict[str, Any]]) -> None:
    for start in range(0, len(data), 1000):  # PutMetricData: at most 1,000 datapoints a call
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])


def populate(sm: Any, cloudwatch: Any, now: datetime, endpoints: int, notebooks: int, variants: int) -> None:
    backend = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]
    sm.create_model(
        ModelName="bench-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"},
    )
    variant_names = [f"variant-{v}" for v in range(variants)]
    sm.create_endpoint_config(
        EndpointConfigName="bench-config",
        ProductionVariants=[
            {
                "VariantName": name,
                "ModelName": "bench-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
            for name in variant_names
        ],
    )
    invocations = []
    for i in range(endpoints):
        name = f"bench-ep-{i:04d}"
        sm.create_endpoint(EndpointName=name, EndpointConfigName="bench-config")
        fake = backend.endpoints[name]
        # 5 % new (grace), the rest 2-30 days old; 1 in 10 of the old ones is used, on its LAST variant.
        fake.creation_time = fake.last_modified_time = now - (
            timedelta(hours=2) if i % 20 == 0 else timedelta(days=2 + i % 28)
        )
        if i % 10 == 3:
            invocations.append(
                {
                    "MetricName": "Invocations",
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": name},
                        {"Name": "VariantName", "Value": variant_names[-1]},
                    ],
                    "Timestamp": now - timedelta(hours=3),
                    "Value": 12.0,
                }
            )
    put_metrics(cloudwatch, "AWS/SageMaker", invocations)

    heartbeats = []
    for i in range(notebooks):
        name = f"bench-nb-{i:04d}"
        sm.create_notebook_instance(NotebookInstanceName=name, InstanceType="ml.t3.medium", RoleArn=ROLE)
        notebook = backend.notebook_instances[name]
        notebook.last_modified_time = now - timedelta(hours=2 + i % 20)
        if i % 50 == 0:
            notebook.status = "Pending"
        if i % 5 != 4:  # 80 % have the heartbeat; half of those are idle
            idle = timedelta(minutes=10) if i % 2 else timedelta(hours=3)
            heartbeats.append(
                {
                    "MetricName": HEARTBEAT_METRIC,
                    "Dimensions": [{"Name": HEARTBEAT_DIMENSION, "Value": name}],
                    "Timestamp": now - timedelta(minutes=3),
                    "Value": idle.total_seconds(),
                }
            )
    put_metrics(cloudwatch, HEARTBEAT_NAMESPACE, heartbeats)


def run_sweep(
    label: str,
    sweep: Callable[[Any, Any, Any], SweepSummary],
    args: argparse.Namespace,
    now: datetime,
    expected_metric_calls: int,
) -> None:
    figures: dict[str, float] = {}
    for traced in (False, True):
        with mock_aws():
            sm = boto3.client("sagemaker", region_name=REGION)
            cloudwatch = boto3.client("cloudwatch", region_name=REGION)
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket=BUCKET)
            populate(sm, cloudwatch, now, args.endpoints, args.notebooks, args.variants_per_endpoint)
            calls = count_calls(sm, cloudwatch, s3)
            if traced:
                tracemalloc.start()
            started = time.perf_counter()
            summary = sweep(sm, cloudwatch, s3)
            elapsed = time.perf_counter() - started
            if traced:
                figures["peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            else:
                figures["seconds"] = elapsed
                untraced_calls, report = dict(calls), summary.to_dict()
    total = sum(untraced_calls.values())
    print(f"\n== {label}: {summary.examined} examined")
    print(
        f"   wall time {figures['seconds']:.2f} s ({total} API calls), "
        f"peak traced memory {figures['peak_mib']:.1f} MiB"
    )
    print(f"   outcomes: {report['counts']}, estimated saving ${report['estimated_hourly_saving_usd']:.2f}/h")
    print(
        f"   cloudwatch:GetMetricData calls: {untraced_calls.get('cloudwatch:GetMetricData', 0)} "
        f"(bound: ceil(queries / 500) = {expected_metric_calls})"
    )
    print("   calls by operation: " + ", ".join(f"{op}={n}" for op, n in sorted(untraced_calls.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--notebooks", type=int, default=500)
    parser.add_argument("--variants-per-endpoint", type=int, default=1)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    common = CommonSettings(dry_run=False, environment="dev", scope="", topic_arn="", region=REGION)
    endpoint_settings = EndpointSettings(
        common=common, idle_window=timedelta(hours=24), grace=timedelta(hours=24), restore_bucket=BUCKET
    )
    notebook_settings = NotebookSettings(
        common=common,
        idle=timedelta(minutes=60),
        fallback="max-uptime",
        max_uptime=timedelta(hours=12),
        office_hours=parse_office_hours("Mon-Fri 08:00-19:00 UTC"),
    )
    print(
        f"{args.endpoints} endpoints x {args.variants_per_endpoint} variant(s), {args.notebooks} notebooks "
        "(5 % of endpoints new, 10 % used on their last variant; 80 % of notebooks with a heartbeat)"
    )
    old_endpoints = args.endpoints - math.ceil(args.endpoints / 20)
    run_sweep(
        "endpoint sweep",
        lambda sm, cw, s3: sweep_endpoints(sm, cw, s3, endpoint_settings, now),
        args,
        now,
        math.ceil(old_endpoints * args.variants_per_endpoint / 500),
    )
    run_sweep(
        "notebook sweep",
        lambda sm, cw, s3: sweep_notebooks(sm, cw, notebook_settings, now),
        args,
        now,
        math.ceil((args.notebooks - math.ceil(args.notebooks / 50)) / 500),
    )


if __name__ == "__main__":
    main()
