"""Helpers shared by the recipe scripts (preprocess, train, evaluate, inference).

The scripts run inside SageMaker's prebuilt scikit-learn container (Python 3.9, scikit-learn >= 1.2), so
this module stays Python 3.9 compatible. It imports only the standard library at module level: Lambda
functions import it too (for ``LOWER_IS_BETTER``) and have no numpy or scikit-learn, so heavy imports happen
inside the functions that need them.

The schema written by preprocess.py (``schema.json``) describes the raw splits; it encodes nothing:

    {"target_column": str, "problem_type": str, "feature_names": [str],
     "feature_kinds": {name: "numeric" | "categorical" | "text" | "image"},
     "class_labels": [str] | null, "rows": {"train": int, "validation": int, "test": int},
     "invalid_rows_dropped": int, "data_format": str}

Learning from the values (imputation, encoding, vectorising) happens in one fitted scikit-learn pipeline
(recipe_pipeline.py) saved in model.joblib; evaluation and serving use it unchanged.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"
PROBLEM_TYPES = (BINARY, MULTICLASS, REGRESSION)
CLASSIFICATION_TYPES = (BINARY, MULTICLASS)

# Metric direction for the quality gate and champion comparison: everything else is higher-is-better.
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
DEFAULT_METRIC = {BINARY: "accuracy", MULTICLASS: "accuracy", REGRESSION: "rmse"}

# Cell values that mean "missing" in text formats (compared lower-case, stripped).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})

SCHEMA_FILE = "schema.json"
MODEL_FILE = "model.joblib"

# Exit code of a script refused because of its input (the offline runner and the docs rely on it).
DATASET_ERROR_EXIT = 2


class DatasetError(Exception):
    """Input the user must fix; the message names the file/column/rule and what to change."""


def default_processing_root() -> Path:
    """/opt/ml/processing, or the job root when the scripts were placed in ``<root>/input/code/``.

    The offline runner maps /opt/ml to a per-job folder; the scripts find it from where they were put.
    """
    here = Path(__file__).resolve().parent
    if here.name == "code" and here.parent.name == "input":
        return here.parent.parent
    return Path("/opt/ml/processing")


def exit_message_file() -> Path | None:
    """/opt/ml/output/message in a processing job (its first KB is the job's ExitMessage); None elsewhere.

    AWS reads this file, not stderr, for a processing job's cause. Only written when the processing root
    exists, so running a script by hand or in a test leaves no file behind.
    """
    root = default_processing_root()
    return root.parent / "output" / "message" if root.is_dir() else None


def run_script(main: Callable[[], None], failure_file: Path | None = None) -> None:
    """Run a script's main; on failure write the cause where SageMaker keeps it, print it last, then exit.

    DatasetError exits 2 with ``DatasetError: <message>``; anything else exits 1 with the traceback
    followed by ``<ExceptionType>: <message>``. The line goes to ``failure_file`` (training jobs:
    /opt/ml/output/failure, which the container's ``train`` command overwrites, so the job's log carries it to
    the run's notification) or, by default, to the processing job's exit message file (ExitMessage).
    """
    target = failure_file if failure_file is not None else exit_message_file()
    try:
        main()
    except DatasetError as exc:
        _fail(f"DatasetError: {exc}", DATASET_ERROR_EXIT, target)
    except Exception as exc:  # noqa: BLE001 - the last line must name the cause, whatever it is
        traceback.print_exc()
        _fail(f"{type(exc).__name__}: {exc}", 1, target)


def ensure_requirements(*modules: str) -> None:
    """Import ``modules``; when one is missing, pip-install this folder's requirements.txt first.

    Training and serving containers install requirements.txt themselves (script mode); a processing job runs
    its entry point directly, so the scripts that need Pillow or matplotlib call this.
    """
    import importlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if not missing:
        return
    requirements = Path(__file__).resolve().parent / "requirements.txt"
    print(f"installing {requirements} for {', '.join(missing)}", flush=True)
    subprocess.check_call(  # noqa: S603 - our own pinned requirements, with this interpreter
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "-r", str(requirements)]
    )
    importlib.invalidate_caches()


def _fail(line: str, code: int, failure_file: Path | None) -> None:
    one_line = " ".join(line.split())
    if failure_file is not None:
        try:
            failure_file.parent.mkdir(parents=True, exist_ok=True)
            # FailureReason and ExitMessage keep the first 1024 characters.
            failure_file.write_text(one_line[:1024], encoding="utf-8")
        except OSError as exc:
            print(f"could not write {failure_file}: {exc}", file=sys.stderr)
    sys.stderr.flush()
    print(one_line, file=sys.stderr, flush=True)
    sys.exit(code)


def is_missing(value: Any) -> bool:
    """True for None, NaN and the text tokens that mean missing (see MISSING_TOKENS)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    return False


def to_number(value: Any) -> float | None:
    """Parse a cell as a finite float; None when it is missing or not a number."""
    if is_missing(value) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_number(number: float) -> str:
    """Canonical text of a number, so 1, 1.0 and "1" name the same class (integral values as integers)."""
    if number.is_integer():
        return str(int(number))
    return repr(number)


def to_text(value: Any) -> str | None:
    """Canonical text of a cell from any format (None when missing); numbers via format_number."""
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return format_number(float(value))
    return str(value).strip()


def read_schema(directory: Path) -> dict[str, Any]:
    """Load schema.json from a directory (a SageMaker channel or the model directory)."""
    path = directory / SCHEMA_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found: the schema written by the preprocessing step is missing")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def is_classification(problem_type: str) -> bool:
    return problem_type in CLASSIFICATION_TYPES


def compute_metrics(
    problem_type: str, y_true: Sequence[float], y_pred: Sequence[float], positive_scores: Any = None
) -> dict[str, float]:
    """Metrics for the problem type (see LOWER_IS_BETTER for direction); only finite values are returned.

    Classification: accuracy, f1_macro, precision_macro, recall_macro, plus roc_auc for binary problems when
    ``positive_scores`` (probability of class 1) is given and both classes occur in ``y_true``.
    Regression: rmse, mae, r2.
    """
    from sklearn import metrics  # noqa: PLC0415 - not at import time: Lambda imports this module

    if is_classification(problem_type):
        values = {
            "accuracy": metrics.accuracy_score(y_true, y_pred),
            "f1_macro": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
            "precision_macro": metrics.precision_score(y_true, y_pred, average="macro", zero_division=0),
            "recall_macro": metrics.recall_score(y_true, y_pred, average="macro", zero_division=0),
        }
        if problem_type == BINARY and positive_scores is not None and len(set(y_true)) == 2:
            values["roc_auc"] = metrics.roc_auc_score(y_true, positive_scores)
    else:
        values = {
            "rmse": math.sqrt(metrics.mean_squared_error(y_true, y_pred)),
            "mae": metrics.mean_absolute_error(y_true, y_pred),
        }
        if len(y_true) > 1:
            values["r2"] = metrics.r2_score(y_true, y_pred)
    return {name: round(float(value), 6) for name, value in values.items() if math.isfinite(float(value))}
