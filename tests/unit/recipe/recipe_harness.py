"""Helpers for the recipe tests: run the scripts the way the offline job runner does (subprocesses, /opt/ml
mapped to tmp dirs).

Datasets are scikit-learn's bundled ones (iris, wine, breast_cancer, diabetes), written in the formats users
upload. Helpers return the finished process so tests can assert exit codes and the last stderr line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from sklearn import datasets

ROOT = Path(__file__).resolve().parents[3]
RECIPE = ROOT / "layers" / "mlops_common" / "mlops_common" / "recipe"
SCRIPT_TIMEOUT = 120


def load_frame(name: str, target: str = "label", label_names: bool = False) -> pd.DataFrame:
    """A bundled scikit-learn dataset as a frame with the target column called ``target``."""
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.rename(columns={"target": target})
    if label_names:
        frame[target] = [str(bunch.target_names[i]) for i in frame[target]]
    return frame


def write_libsvm(frame: pd.DataFrame, target: str, path: Path) -> None:
    """LibSVM text: ``<label> <1-based index>:<value>`` with zeros left out, as the format intends."""
    features = [c for c in frame.columns if c != target]
    lines = []
    for _, row in frame.iterrows():
        pairs = [f"{i}:{row[c]:g}" for i, c in enumerate(features, start=1) if row[c] != 0]
        lines.append(" ".join([f"{row[target]:g}", *pairs]))
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run_script(
    script: str, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Finished:
    """``python <recipe>/<script> args`` with the current interpreter, as the offline runner starts jobs."""
    return run_python(RECIPE / script, args, env, cwd)


def run_python(
    script: Path, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Finished:
    completed = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        cwd=cwd,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    return Finished(completed.returncode, completed.stdout, completed.stderr)


def preprocess(data_dir: Path, out_dir: Path, *args: str) -> Finished:
    return run_script("preprocess.py", ["--input-dir", str(data_dir), "--output-dir", str(out_dir), *args])


def train(splits: Path, ml_root: Path, *hyperparameters: str) -> Finished:
    """A training job with the toolkit's env vars; ``ml_root`` plays /opt/ml."""
    env = {
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_CHANNEL_SCHEMA": str(splits / "schema"),
        "SM_MODEL_DIR": str(ml_root / "model"),
    }
    return run_script("train.py", list(hyperparameters), env=env)


def package_model(model_dir: Path, archive: Path) -> Path:
    """Tar the model dir's contents at the archive root, as SageMaker builds model.tar.gz."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return archive


def evaluate(archive_dir: Path, test_dir: Path, out_dir: Path) -> Finished:
    return run_script(
        "evaluate.py",
        ["--model-path", str(archive_dir), "--test-path", str(test_dir), "--output-dir", str(out_dir)],
    )


def import_from(path: Path, name: str) -> ModuleType:
    """Import a script by path under a unique module name (its own folder goes first on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    # No __pycache__ in the recipe folder: the pipeline uploads that folder by content hash.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def assert_ok(finished: Finished) -> None:
    assert finished.returncode == 0, f"exit {finished.returncode}\n{finished.stdout}\n{finished.stderr}"


@dataclass
class Chain:
    """One dataset through preprocess -> train -> model.tar.gz -> evaluate."""

    splits: Path
    ml_root: Path
    archive: Path
    evaluation: dict[str, Any]
    train_output: Finished

    @property
    def schema(self) -> dict[str, Any]:
        return read_json(self.splits / "schema" / "schema.json")


def run_chain(
    tmp: Path, frame: pd.DataFrame, preprocess_args: tuple[str, ...] = (), hp: tuple[str, ...] = ()
) -> Chain:
    data = tmp / "data"
    data.mkdir(parents=True)
    frame.to_csv(data / "dataset.csv", index=False)
    splits = tmp / "processing"
    assert_ok(preprocess(data, splits, *preprocess_args))
    ml_root = tmp / "ml"
    trained = train(splits, ml_root, *hp)
    assert_ok(trained)
    archive = package_model(ml_root / "model", tmp / "artifact" / "model.tar.gz")
    evaluated = evaluate(archive.parent, splits / "test", tmp / "evaluation")
    assert_ok(evaluated)
    return Chain(splits, ml_root, archive, read_json(tmp / "evaluation" / "evaluation.json"), trained)


def iris_with_category() -> pd.DataFrame:
    """Iris with named classes plus a text feature, to exercise label and category encoding."""
    frame = load_frame("iris", target="species", label_names=True)
    frame["petal size"] = ["small" if length < 2.5 else "large" for length in frame["petal length (cm)"]]
    return frame


def install_code(processing_root: Path) -> Path:
    """Copy the recipe to ``<root>/input/code/`` as a processing job's ``code`` input lands it."""
    code = processing_root / "input" / "code"
    code.mkdir(parents=True)
    for script in RECIPE.glob("*.py"):
        (code / script.name).write_bytes(script.read_bytes())
    return code
