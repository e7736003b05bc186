"""The built layer is what Lambda loads from /opt: only its pinned packages and mlops_common, compiled for
python3.12 with bytecode that stays valid after zipping, and every handler imports with nothing else."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from bench.cold_start import functions, runtime_sdk_dir
from offline.stack import DEFAULT_BUILD_DIR
from tests.unit.template.test_layer_requirements import LAYER, requirements

BUILT_LAYER = DEFAULT_BUILD_DIR / "CommonLayer" / "python"
RUNTIME_SDK_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
HASH_BASED_UNCHECKED = 0b01  # PEP 552 flags: hash-based, source not checked

# Loads every handler module from its file in one interpreter with the function's environment applied.
IMPORT_ALL = """
import importlib.util, json, os, sys
for target in json.loads(sys.stdin.read()):
    os.environ.update(target["env"])
    spec = importlib.util.spec_from_file_location("handler_" + target["name"], target["path"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, target["attr"])), target
"""


@pytest.fixture(scope="module")
def layer() -> Path:
    if not BUILT_LAYER.is_dir():
        pytest.fail(f"{BUILT_LAYER} is missing: run `make build` (sam build) first")
    return BUILT_LAYER


def test_layer_holds_exactly_the_pinned_packages(layer: Path) -> None:
    installed = set()
    for dist_info in layer.glob("*.dist-info"):
        name, version = dist_info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed.add(f"{canonicalize_name(name)}=={version}")
    pinned = {f"{canonicalize_name(r.name)}{r.specifier}" for r in requirements(LAYER / "requirements.txt")}
    assert installed == pinned
    top_level = {path.name.removesuffix(".py") for path in layer.iterdir()}
    assert top_level & RUNTIME_SDK_MODULES == set()
    assert (layer / "mlops_common" / "pipeline" / "naming.py").is_file()


def test_every_module_ships_bytecode_that_survives_zipping(layer: Path) -> None:
    missing, timestamped = [], []
    for source in sorted(layer.rglob("*.py")):
        compiled = Path(importlib.util.cache_from_source(str(source)))
        if not compiled.is_file():
            missing.append(str(source.relative_to(layer)))
        elif int.from_bytes(compiled.read_bytes()[4:8], "little") != HASH_BASED_UNCHECKED:
            timestamped.append(str(source.relative_to(layer)))
    assert missing == [], f"no .pyc for {len(missing)} modules, e.g. {missing[:3]}"
    assert timestamped == [], f"timestamp-checked .pyc (stale once zipped) for {timestamped[:3]}"


def test_every_handler_imports_with_only_the_layer_and_the_runtime_sdk(layer: Path, tmp_path: Path) -> None:
    targets = [
        {
            "name": target["name"],
            "path": str(target["code_dir"] / (target["module"].replace(".", "/") + ".py")),
            "attr": target["attr"],
            "env": target["env"],
        }
        for target in functions(DEFAULT_BUILD_DIR)
    ]
    assert len(targets) >= 10
    sdk = runtime_sdk_dir(tmp_path / "runtime")
    # -I -S: none of the dev venv's packages; -B: nothing written into the build output.
    script = f"import sys; sys.path[:0] = {[str(layer), str(sdk)]!r}\n" + IMPORT_ALL
    lambda_env = {
        "AWS_LAMBDA_FUNCTION_NAME": "import-check",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", script],
        input=json.dumps(targets),
        env={**lambda_env, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
