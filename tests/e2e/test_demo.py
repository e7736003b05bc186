"""`make demo` (python -m offline demo) from the sam build output: exit 0 and the promised report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_sample_dataset_to_a_prediction(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "offline", "demo"],
        cwd=ROOT,
        env={**os.environ, "OFFLINE_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    # One line per finished state, with its duration.
    assert re.search(r"^\s+ok\s+PipelineStateMachine\s+\S+\s+\d+\.\d\ds$", out, re.MULTILINE), out
    assert re.search(r"^\s+metrics:\s+.*accuracy=0\.\d{4}", out, re.MULTILINE), out
    assert re.search(r"model package: arn:aws:sagemaker:us-east-1:\d{12}:model-package/", out), out
    report = re.search(r"^\s+report:\s+(\S+report\.html)$", out, re.MULTILINE)
    assert report, out
    page = (ROOT / report.group(1)).read_text()  # a relative path is relative to the repository
    assert "<h1>Model evaluation</h1>" in page and 'src="data:image/png;base64,' in page
    assert "endpoint:      mlops-local-iris" in out
    prediction = re.search(r"prediction: .* -> (\w+) .*\(true label: (\w+)\)", out)
    assert prediction and prediction.group(1) == prediction.group(2) == "setosa", out
    assert "Cost guard, once, dry run" in out
    # Handlers' and jobs' output goes to the log, not the terminal.
    assert '{"level"' not in out
    assert (tmp_path / "demo" / "demo.log").stat().st_size > 0


def test_demo_without_a_build_says_to_build(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "offline", "demo", "--build-dir", str(tmp_path / "no-such-build")],
        cwd=ROOT,
        env={**os.environ, "OFFLINE_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "make build" in result.stdout
