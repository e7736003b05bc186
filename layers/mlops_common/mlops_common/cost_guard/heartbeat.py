"""Notebook heartbeat: how long since a person last used this notebook instance, as a CloudWatch metric.

Runs ON the notebook instance every 5 minutes (cron, installed by the NotebookHeartbeatLifecycleConfig in
template.yaml, which embeds this file verbatim; tests/unit/cost_guard fails when the two differ). It reads
the local Jupyter Server API (sessions, kernels, terminals), decides the idle time, and publishes it as
SageMakerMLOps/CostGuard NotebookIdleSeconds {NotebookInstanceName}; the notebook sweeper stops the
instance when that reaches the threshold. Self-contained on purpose: standard library (+ boto3 when
present, else the AWS CLI), Python 3.7+ for the notebook's system environment.
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone
from typing import Any

NAMESPACE = "SageMakerMLOps/CostGuard"
METRIC = "NotebookIdleSeconds"
DIMENSION = "NotebookInstanceName"
METADATA = "/opt/ml/metadata/resource-metadata.json"
# Kernel states that mean code is running (or about to): the user is waiting on it, so not idle.
BUSY_STATES = frozenset({"busy", "starting", "restarting", "autorestarting"})
UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11; the notebook may run older


def parse_time(text: str) -> datetime:
    """Jupyter's ISO 8601 UTC timestamps, e.g. 2026-11-22T16:11:10.423603Z."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def assess(
    status: dict[str, Any],
    sessions: list[dict[str, Any]],
    kernels: list[dict[str, Any]],
    terminals: list[dict[str, Any]],
    now: datetime,
    *,
    count_connections: bool = False,
    count_api_activity: bool = False,
) -> dict[str, Any]:
    """Seconds since the last user activity, from Jupyter API responses. Pure: unit-tested on recordings.

    Activity: a kernel running code, a kernel's or terminal's last_activity (messages, output, input), and
    optionally an open browser connection or any API call (file saves, browsing). Both are off by default: an
    open tab left overnight keeps a kernel connection, and its periodic API polling may count as activity.
    """
    all_kernels = {k["id"]: k for k in kernels if isinstance(k, dict) and "id" in k}
    for session in sessions:
        kernel = session.get("kernel") if isinstance(session, dict) else None
        if isinstance(kernel, dict) and "id" in kernel:
            all_kernels.setdefault(kernel["id"], kernel)
    busy = sorted(k["id"] for k in all_kernels.values() if k.get("execution_state") in BUSY_STATES)
    connections = sum(int(k.get("connections") or 0) for k in all_kernels.values())
    # Nothing ever happened: the idle clock starts when Jupyter started (not at the epoch).
    moments = [("server start", status.get("started"))]
    moments += [("kernel " + k["id"][:8], k.get("last_activity")) for k in all_kernels.values()]
    moments += [("terminal " + str(t.get("name")), t.get("last_activity")) for t in terminals]
    if count_api_activity:
        moments.append(("api", status.get("last_activity")))
    known = [(parse_time(at), source) for source, at in moments if at]
    last, source = max(known) if known else (now, "no timestamps")
    idle = max(0.0, (now - last).total_seconds())
    if busy:
        idle, source = 0.0, "busy kernel " + busy[0][:8]
    elif count_connections and connections:
        idle, source = 0.0, f"{connections} open kernel connection(s)"
    return {
        "idle_seconds": round(idle, 1),
        "last_activity": last.isoformat(),
        "source": source,
        "kernels": len(all_kernels),
        "busy_kernels": len(busy),
        "connections": connections,
        "terminals": len(terminals),
    }


def jupyter_get(base_url: str, path: str) -> Any:
    # The notebook's own Jupyter listens on localhost with a self-signed certificate and no token.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # no_track_activity: this poll must not look like user activity to Jupyter itself.
    url = base_url + path + "?no_track_activity=1"
    with urllib.request.urlopen(url, timeout=10, context=context) as response:  # noqa: S310 - fixed local URL
        return json.loads(response.read().decode())


def notebook_identity(path: str = METADATA) -> tuple[str, str]:
    """(notebook instance name, region) from the metadata file SageMaker writes on every notebook instance."""
    with open(path) as handle:  # noqa: PTH123 - keep to what Python 3.7 offers without imports
        metadata = json.load(handle)
    return metadata["ResourceName"], metadata["ResourceArn"].split(":")[3]


def publish(name: str, region: str, idle_seconds: float, now: datetime) -> None:
    datum = {
        "MetricName": METRIC,
        "Dimensions": [{"Name": DIMENSION, "Value": name}],
        "Timestamp": now.isoformat(),
        "Value": idle_seconds,
        "Unit": "Seconds",
    }
    try:
        import boto3  # noqa: PLC0415 - optional: present in the notebook's JupyterSystemEnv
    except ImportError:
        aws = shutil.which("aws")
        if not aws:
            raise RuntimeError(
                "neither boto3 nor the AWS CLI is available to publish the heartbeat"
            ) from None
        argv = [aws, "cloudwatch", "put-metric-data", "--region", region, "--namespace", NAMESPACE]
        subprocess.run([*argv, "--metric-data", json.dumps([datum])], check=True, timeout=60)  # noqa: S603
        return
    datum["Timestamp"] = now
    boto3.client("cloudwatch", region_name=region).put_metric_data(Namespace=NAMESPACE, MetricData=[datum])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jupyter-url", default="https://localhost:8443")
    parser.add_argument("--count-connections", action="store_true", help="an open browser tab counts as use")
    parser.add_argument(
        "--count-api-activity", action="store_true", help="any Jupyter API call counts as use"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the reading, publish nothing")
    parser.add_argument("--metadata", default=METADATA, help="the notebook's resource metadata file")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    try:
        reading = assess(
            jupyter_get(args.jupyter_url, "/api/status"),
            jupyter_get(args.jupyter_url, "/api/sessions"),
            jupyter_get(args.jupyter_url, "/api/kernels"),
            jupyter_get(args.jupyter_url, "/api/terminals"),
            now,
            count_connections=args.count_connections,
            count_api_activity=args.count_api_activity,
        )
    except (OSError, ValueError) as error:
        # Jupyter down or restarting: publish nothing; the sweeper then applies its no-heartbeat policy.
        print(f"{now.isoformat()} heartbeat skipped: Jupyter API unavailable: {error}", file=sys.stderr)
        return 1
    print(now.isoformat(), json.dumps(reading, sort_keys=True))
    if not args.dry_run:
        name, region = notebook_identity(args.metadata)
        publish(name, region, reading["idle_seconds"], now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
