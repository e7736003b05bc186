"""The notebook heartbeat's activity logic, replayed on Jupyter Server API responses recorded from a real
server (fixtures/record_jupyter_api.py), and its publishing path against moto."""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from moto import mock_aws

from mlops_common.cost_guard import heartbeat, settings
from mlops_common.cost_guard.notebooks import read_heartbeats

FIXTURES = Path(__file__).parent / "fixtures"


def recording(scenario: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"jupyter_{scenario}.json").read_text())


def assess(scenario: str, later: timedelta, **options: bool) -> dict[str, Any]:
    rec = recording(scenario)
    now = heartbeat.parse_time(rec["recorded_at"]) + later
    return heartbeat.assess(rec["status"], rec["sessions"], rec["kernels"], rec["terminals"], now, **options)


def test_a_running_cell_is_activity_however_old_its_last_message() -> None:
    reading = assess("busy_kernel", later=timedelta(hours=5))

    assert reading["idle_seconds"] == 0
    assert reading["busy_kernels"] == 1
    assert reading["source"].startswith("busy kernel ")


def test_idle_time_counts_from_the_newest_kernel_or_terminal_activity() -> None:
    rec = recording("idle_disconnected")
    terminal_at = heartbeat.parse_time(rec["terminals"][0]["last_activity"])
    kernel_at = heartbeat.parse_time(rec["kernels"][0]["last_activity"])
    assert terminal_at > kernel_at  # the recording used the terminal after the notebook

    reading = assess("idle_disconnected", later=timedelta(hours=2))

    expected = (heartbeat.parse_time(rec["recorded_at"]) + timedelta(hours=2) - terminal_at).total_seconds()
    assert reading["idle_seconds"] == pytest.approx(expected, abs=0.1)
    assert reading["source"] == "terminal 1"
    assert reading["connections"] == 0


def test_an_open_tab_is_not_activity_unless_asked() -> None:
    rec = recording("idle_connected")
    assert rec["kernels"][0]["connections"] == 1

    ignored = assess("idle_connected", later=timedelta(hours=3))
    counted = assess("idle_connected", later=timedelta(hours=3), count_connections=True)

    assert ignored["idle_seconds"] > 3 * 3600 - 60
    assert counted["idle_seconds"] == 0
    assert counted["source"] == "1 open kernel connection(s)"


def test_a_fresh_server_is_idle_since_it_started() -> None:
    rec = recording("empty")
    reading = assess("empty", later=timedelta(minutes=30))

    started = heartbeat.parse_time(rec["status"]["started"])
    expected = (heartbeat.parse_time(rec["recorded_at"]) + timedelta(minutes=30) - started).total_seconds()
    assert reading["idle_seconds"] == pytest.approx(expected, abs=0.1)
    assert reading["source"] == "server start"
    assert reading["kernels"] == 0


def test_api_activity_counts_only_when_asked() -> None:
    rec = recording("empty")
    status = {**rec["status"], "last_activity": rec["recorded_at"]}
    now = heartbeat.parse_time(rec["recorded_at"]) + timedelta(minutes=10)

    default = heartbeat.assess(status, [], [], [], now)
    counted = heartbeat.assess(status, [], [], [], now, count_api_activity=True)

    assert counted["idle_seconds"] == pytest.approx(600, abs=0.1)
    assert default["idle_seconds"] > counted["idle_seconds"]


def test_the_heartbeat_publishes_what_the_sweeper_reads() -> None:
    # The script is self-contained (copied onto the notebook), so its names are repeated; they must agree.
    assert (heartbeat.NAMESPACE, heartbeat.METRIC, heartbeat.DIMENSION) == (
        settings.HEARTBEAT_NAMESPACE,
        settings.HEARTBEAT_METRIC,
        settings.HEARTBEAT_DIMENSION,
    )
    rec = recording("idle_disconnected")
    now = heartbeat.parse_time(rec["recorded_at"]).replace(microsecond=0)  # CloudWatch keeps whole seconds
    with mock_aws():
        heartbeat.publish("analyst-notebook", "us-east-1", 1234.5, now)
        readings = read_heartbeats(
            boto3.client("cloudwatch", region_name="us-east-1"),
            ["analyst-notebook", "other"],
            now + timedelta(minutes=3),
        )

    assert readings["other"] is None
    reading = readings["analyst-notebook"]
    assert reading is not None
    assert reading.idle_seconds == 1234.5
    assert reading.idle_for(now + timedelta(minutes=3)) == timedelta(seconds=1234.5 + 180)


def test_main_reads_the_notebook_metadata_and_survives_a_down_jupyter(tmp_path, capsys) -> None:
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(
        json.dumps(
            {
                "ResourceName": "analyst-notebook",
                "ResourceArn": "arn:aws:sagemaker:eu-west-1:123456789012:notebook-instance/analyst-notebook",
            }
        )
    )
    assert heartbeat.notebook_identity(str(metadata)) == ("analyst-notebook", "eu-west-1")

    # Nothing listens on this port: the run reports and publishes nothing (the sweeper's fallback applies).
    assert heartbeat.main(["--jupyter-url", "https://127.0.0.1:9", "--dry-run"]) == 1
    assert "Jupyter API unavailable" in capsys.readouterr().err


class RecordedJupyter(BaseHTTPRequestHandler):
    """Serves one recorded scenario's responses, as the notebook's Jupyter would."""

    recording: ClassVar[dict[str, Any]] = {}
    requested: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        self.requested.append(query)
        body = json.dumps(self.recording[path.removeprefix("/api/")]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jupyter() -> Iterator[str]:
    RecordedJupyter.recording = recording("idle_disconnected")
    RecordedJupyter.requested = []
    server = HTTPServer(("127.0.0.1", 0), RecordedJupyter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_main_reads_jupyter_and_publishes_the_heartbeat(jupyter: str, tmp_path, capsys) -> None:
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(
        json.dumps(
            {
                "ResourceName": "analyst-notebook",
                "ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/analyst-notebook",
            }
        )
    )
    with mock_aws():
        assert heartbeat.main(["--jupyter-url", jupyter, "--metadata", str(metadata)]) == 0
        # The sweeper reads minutes later; EndTime is exclusive and in whole seconds, so read a bit later.
        later = datetime.now(UTC) + timedelta(seconds=5)
        readings = read_heartbeats(
            boto3.client("cloudwatch", region_name="us-east-1"), ["analyst-notebook"], later
        )

    reading = readings["analyst-notebook"]
    assert reading is not None
    # The recording is older than this test run, so the notebook has been idle at least since then.
    recorded = heartbeat.parse_time(RecordedJupyter.recording["terminals"][0]["last_activity"])
    assert reading.idle_seconds >= (datetime.now(UTC) - recorded).total_seconds() - 120
    # Every poll asks Jupyter not to count it as user activity.
    assert RecordedJupyter.requested == ["no_track_activity=1"] * 4
    assert '"source": "terminal 1"' in capsys.readouterr().out


def test_heartbeat_stays_python_37_compatible() -> None:
    # The notebook's system environment may run an older Python than the Lambda runtime.
    ast.parse(Path(heartbeat.__file__).read_text(), feature_version=(3, 7))
