"""The recipe's own tests again, under the scikit-learn container's Python and pins (`make container-venv`:
.venv-container-test = the container's libraries + the recipe's requirements.txt + pytest), in a subprocess.

Runs only with CONTAINER_VENV_REQUIRED set (`make test`, `make test-container`); without the virtualenv it
then fails. CONTAINER_RECIPE_TESTS names the test files to run (space-separated; default: all of
tests/unit/recipe): `make test` runs the serving ones, where the container's toolkits differ most from a plain
interpreter; `make test-container` all of them.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from offline.seams import container_runtime

ROOT = Path(__file__).resolve().parents[2]


def test_the_recipe_tests_pass_under_the_container_interpreter() -> None:
    python = container_runtime.DEFAULT_TEST_ROOT / "bin" / "python"
    if not os.environ.get("CONTAINER_VENV_REQUIRED"):
        pytest.skip("runs in `make test-container` (CONTAINER_VENV_REQUIRED=1)")
    if not container_runtime.built() or not (container_runtime.DEFAULT_TEST_ROOT / ".installed").is_file():
        pytest.fail("no .venv-container-test: run `make container-venv`")
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import sklearn, numpy, pandas, sys; print(sys.version_info[:2], sklearn.__version__, "
            "numpy.__version__, pandas.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert versions == "(3, 12) 1.4.2 2.1.0 2.3.2", versions
    chosen = os.environ.get("CONTAINER_RECIPE_TESTS", "tests/unit/recipe").split()
    finished = subprocess.run(
        [str(python), "-m", "pytest", *chosen, "-x"],  # -q and the rest from pyproject
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))},
    )
    assert finished.returncode == 0, finished.stdout[-6000:] + finished.stderr[-3000:]
    assert re.search(r"^\d+ passed", finished.stdout, re.MULTILINE), finished.stdout[-2000:]
