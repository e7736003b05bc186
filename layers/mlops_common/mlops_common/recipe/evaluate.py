"""Processing job: score the trained pipeline on the raw test split and write a report a person reads.

SageMaker paths (each overridable by an argument; when this script sits in ``<root>/input/code/`` the defaults
resolve under ``<root>`` instead of /opt/ml/processing, which is how the offline job runner maps them):

    in : /opt/ml/processing/input/model/model.tar.gz   the training job's artifact (the fitted pipeline)
         /opt/ml/processing/input/test/test.csv         from preprocess.py (raw values, header, target)
    out: /opt/ml/processing/output/evaluation/evaluation.json
         {"problem_type": str, "metrics": {name: float}, "test_rows": int, "class_labels": [str] | null,
          "confusion_matrix": {"labels": [str], "matrix": [[int]]} (classification),
          "report": "report/report.html",
          "champion": {"package": str | null, "metrics": {name: float}}}
         /opt/ml/processing/output/evaluation/report/  report.html (self-contained) and its PNG plots

Metrics: classification -> accuracy, f1_macro, precision_macro, recall_macro (+ roc_auc when binary);
regression -> rmse, mae, r2. Higher is better except recipe_common.LOWER_IS_BETTER (rmse, mae).
``--champion-metrics`` (JSON object) carries the metrics of the model serving the dataset's endpoint when the
run started (PrepareRun reads them from its model package), so the report can put both side by side.
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
    parser.add_argument("--champion-metrics", default="{}", help="JSON object: the serving model's metrics")
    parser.add_argument("--champion-package", default="", help="the serving model's package ARN")
    args = parser.parse_args(argv)
    try:
        champion = json.loads(args.champion_metrics)
    except ValueError as exc:
        raise rc.DatasetError(f"--champion-metrics is not JSON: {args.champion_metrics!r}") from exc
    if not isinstance(champion, dict):
        raise rc.DatasetError(f"--champion-metrics must be a JSON object, got {args.champion_metrics!r}")
    args.champion_metrics = {str(k): float(v) for k, v in champion.items()}
    return args


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


def evaluate(model_dir: Path, test_path: Path) -> tuple[dict[str, Any], Any]:
    """evaluation.json's content, and what the report plots (pipeline, test split, predictions)."""
    schema = rc.read_schema(model_dir)
    if "feature_kinds" not in schema:
        raise rc.DatasetError(
            f"{model_dir / rc.SCHEMA_FILE} has no feature_kinds: the model was trained by an older recipe; "
            "re-run the dataset"
        )
    if "image" in schema["feature_kinds"].values():
        rc.ensure_requirements("PIL")
    import recipe_pipeline as rp  # noqa: PLC0415 - scikit-learn loads after the inputs are found

    pipeline = joblib.load(model_dir / rc.MODEL_FILE)
    test_dir, name = (test_path.parent, test_path.name) if test_path.is_file() else (test_path, "test.csv")
    x, y = rp.read_split(test_dir, name, schema)
    scored = rp.score(pipeline, x, y, schema)
    evaluation: dict[str, Any] = {
        "problem_type": schema["problem_type"],
        "metrics": scored["metrics"],
        "test_rows": len(y),
        "class_labels": schema["class_labels"],
    }
    if rc.is_classification(schema["problem_type"]):
        from sklearn.metrics import confusion_matrix  # noqa: PLC0415

        labels = list(schema["class_labels"])
        matrix = confusion_matrix(list(y), list(scored["predicted"]), labels=labels)
        evaluation["confusion_matrix"] = {"labels": labels, "matrix": matrix.tolist()}
    return evaluation, {"pipeline": pipeline, "schema": schema, "y": y, "scored": scored, "x": x}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    archive = find_model_archive(args.model_path)
    rc.ensure_requirements("matplotlib")
    import recipe_report  # noqa: PLC0415 - matplotlib only in this job

    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        evaluation, scored = evaluate(extract_model(archive, Path(scratch)), args.test_path)
        evaluation["champion"] = {"package": args.champion_package or None, "metrics": args.champion_metrics}
        report = recipe_report.write_report(args.output_dir / recipe_report.REPORT_DIR, evaluation, scored)
    evaluation["report"] = report.relative_to(args.output_dir).as_posix()
    (args.output_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2), encoding="utf-8")
    for name, value in evaluation["metrics"].items():
        print(f"test:{name}={value:.6f}")
    print(f"report: {report}")


if __name__ == "__main__":
    rc.run_script(main)
