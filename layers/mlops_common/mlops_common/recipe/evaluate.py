"""Processing job: score the trained model on the test split.

SageMaker paths (each overridable by an argument; when this script sits in ``<root>/input/code/`` the defaults
resolve under ``<root>`` instead of /opt/ml/processing, which is how the offline job runner maps them):

    in : /opt/ml/processing/input/model/model.tar.gz   the training job's artifact
         /opt/ml/processing/input/test/test.csv         from preprocess.py (no header, target first)
    out: /opt/ml/processing/output/evaluation/evaluation.json
         {"problem_type": str, "metrics": {name: float}, "test_rows": int, "class_labels": [str] | null}

Metrics: classification -> accuracy, f1_macro, precision_macro, recall_macro (+ roc_auc when binary);
regression -> rmse, mae, r2. Higher is better except recipe_common.LOWER_IS_BETTER (rmse, mae).
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import joblib

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recipe_common as rc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    root = rc.default_processing_root()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-path", type=Path, default=root / "input" / "model", help="model.tar.gz or its dir"
    )
    parser.add_argument("--test-path", type=Path, default=root / "input" / "test", help="test.csv or its dir")
    parser.add_argument("--output-dir", type=Path, default=root / "output" / "evaluation")
    return parser.parse_args(argv)


def find_model_archive(path: Path) -> Path:
    if path.is_file():
        return path
    archives = sorted(path.rglob("model.tar.gz")) if path.is_dir() else []
    if not archives:
        raise rc.DatasetError(f"no model.tar.gz at {path}: the training job's artifact was not delivered")
    return archives[0]


def extract_model(archive: Path, destination: Path) -> Path:
    """Unpack regular files only, refusing absolute paths and '..' (no tarfile filters on Python 3.9)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise rc.DatasetError(f"{archive}: refusing unsafe path {member.name!r} in the archive")
                if member.isdir():
                    (destination / member.name).mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target = destination / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is not None:
                        target.write_bytes(source.read())
    except tarfile.TarError as exc:
        raise rc.DatasetError(f"{archive}: not a readable tar.gz ({exc})") from exc
    if not (destination / rc.MODEL_FILE).is_file():
        raise rc.DatasetError(f"{archive} holds no {rc.MODEL_FILE}: it was not written by train.py")
    return destination


def evaluate(model_dir: Path, test_path: Path) -> dict[str, Any]:
    schema = rc.read_schema(model_dir)
    estimator = joblib.load(model_dir / rc.MODEL_FILE)
    test_dir, name = (test_path.parent, test_path.name) if test_path.is_file() else (test_path, "test.csv")
    test = rc.read_split_csv(test_dir, name)
    if test.shape[1] != len(schema["feature_names"]) + 1:
        raise rc.DatasetError(
            f"test split has {test.shape[1]} columns but the model expects {len(schema['feature_names'])} "
            "features plus the target; the test split comes from a different preprocessing run"
        )
    return {
        "problem_type": schema["problem_type"],
        "metrics": rc.evaluate_estimator(estimator, test, schema["problem_type"]),
        "test_rows": int(test.shape[0]),
        "class_labels": schema["class_labels"],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    archive = find_model_archive(args.model_path)
    with tempfile.TemporaryDirectory() as scratch:
        report = evaluate(extract_model(archive, Path(scratch)), args.test_path)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    for name, value in report["metrics"].items():
        print(f"test:{name}={value:.6f}")


if __name__ == "__main__":
    rc.run_script(main)
