"""The heartbeat lifecycle configuration in template.yaml: embeds heartbeat.py verbatim, fits, parses."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[3]
HEARTBEAT = ROOT / "layers/mlops_common/mlops_common/cost_guard/heartbeat.py"
# CreateNotebookInstanceLifecycleConfig: Content is at most 16384 characters, base64-encoded.
MAX_CONTENT = 16384


@pytest.fixture(scope="module")
def on_start_script() -> str:
    template, errors = decode(str(ROOT / "template.yaml"))
    assert not errors, errors
    resource = template["Resources"]["NotebookHeartbeatLifecycleConfig"]
    (hook,) = resource["Properties"]["OnStart"]
    return hook["Content"]["Fn::Base64"]


def test_the_template_embeds_heartbeat_py_verbatim(on_start_script: str) -> None:
    start = on_start_script.index("<<'HEARTBEAT_PY'\n") + len("<<'HEARTBEAT_PY'\n")
    end = on_start_script.index("\nHEARTBEAT_PY\n")
    embedded = on_start_script[start:end] + "\n"
    assert embedded == HEARTBEAT.read_text(), (
        "template.yaml NotebookHeartbeatLifecycleConfig holds a stale copy of heartbeat.py: run "
        ".venv/bin/python tests/unit/cost_guard/sync_heartbeat_into_template.py"
    )


def test_the_script_fits_the_lifecycle_configuration_limit(on_start_script: str) -> None:
    assert len(base64.b64encode(on_start_script.encode())) <= MAX_CONTENT


def test_the_script_is_valid_bash_installing_a_cron_entry(on_start_script: str, tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash
    script = tmp_path / "on-start.sh"
    script.write_text(on_start_script)
    subprocess.run([bash, "-n", str(script)], check=True)
    assert on_start_script.startswith("#!/bin/bash\n")
    assert "*/5 * * * * root $PYTHON /opt/cost-guard/heartbeat.py" in on_start_script


def test_the_stack_notebook_uses_the_heartbeat() -> None:
    template, _ = decode(str(ROOT / "template.yaml"))
    notebook = template["Resources"]["NotebookInstance"]["Properties"]
    assert notebook["LifecycleConfigName"] == {
        "Fn::GetAtt": ["NotebookHeartbeatLifecycleConfig", "NotebookInstanceLifecycleConfigName"]
    }
