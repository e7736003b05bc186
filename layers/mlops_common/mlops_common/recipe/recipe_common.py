"""Helpers shared by the recipe scripts (preprocess, train, evaluate, inference).

The scripts run inside SageMaker's prebuilt scikit-learn container (Python 3.9, scikit-learn >= 1.2), so
this module stays Python 3.9 compatible. It imports only the standard library at module level: Lambda
functions import it too (for ``LOWER_IS_BETTER``) and have no numpy or scikit-learn, so heavy imports happen
inside the functions that need them.

The schema written by preprocess.py (``schema.json``) is the one contract between the steps:

    {"target_column": str, "problem_type": str, "feature_names": [str], "class_labels": [str] | null,
     "rows": {"train": int, "validation": int, "test": int}, "invalid_rows_dropped": int,
     "encoders": {"features": {name: {"type": "numeric", "fill_value": float}
                                   | {"type": "categorical", "categories": [str]}},
                  "target": {"type": "label", "classes": [str]} | {"type": "numeric"}}}
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
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

# Categorical values never seen in training (and missing ones) encode to this code.
UNKNOWN_CATEGORY = -1.0

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


def run_script(main: Callable[[], None], failure_file: Path | None = None) -> None:
    """Run a script's main; on failure print one last stderr line SageMaker shows as the cause, then exit.

    DatasetError exits 2 with ``DatasetError: <message>``; anything else exits 1 with the traceback
    followed by ``<ExceptionType>: <message>``. With ``failure_file`` (training jobs:
    /opt/ml/output/failure) the reason is also written there; SageMaker copies it into FailureReason.
    """
    try:
        main()
    except DatasetError as exc:
        _fail(f"DatasetError: {exc}", DATASET_ERROR_EXIT, failure_file)
    except Exception as exc:  # noqa: BLE001 - the last line must name the cause, whatever it is
        traceback.print_exc()
        _fail(f"{type(exc).__name__}: {exc}", 1, failure_file)


def _fail(line: str, code: int, failure_file: Path | None) -> None:
    one_line = " ".join(line.split())
    if failure_file is not None:
        try:
            failure_file.parent.mkdir(parents=True, exist_ok=True)
            failure_file.write_text(
                one_line[:1024], encoding="utf-8"
            )  # FailureReason holds at most 1024 chars
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


def encode_value(value: Any, encoder: dict[str, Any], feature: str) -> float:
    """Encode one raw feature value the way preprocessing encoded the training data.

    Numeric: missing -> the training median (``fill_value``); not a number -> ValueError.
    Categorical: the category's index in ``categories``; unseen or missing -> UNKNOWN_CATEGORY.
    """
    if encoder["type"] == "numeric":
        if is_missing(value):
            return float(encoder["fill_value"])
        number = to_number(value)
        if number is None:
            raise ValueError(
                f"feature {feature!r}: {value!r} is not a number; send a number or leave it empty"
            )
        return number
    text = to_text(value)
    index = _category_index(encoder).get(text) if text is not None else None
    return UNKNOWN_CATEGORY if index is None else float(index)


def _category_index(encoder: dict[str, Any]) -> dict[str, int]:
    # Cached on the encoder dict itself: inference encodes many rows with the same schema.
    index = encoder.get("_index")
    if index is None:
        index = {category: position for position, category in enumerate(encoder["categories"])}
        encoder["_index"] = index
    return index


def encode_rows(rows: Iterable[Sequence[Any]], schema: dict[str, Any]) -> list[list[float]]:
    """Encode raw feature rows (values in ``feature_names`` order) into numeric rows."""
    names = schema["feature_names"]
    encoders = schema["encoders"]["features"]
    encoded = []
    for row_number, row in enumerate(rows, start=1):
        if len(row) != len(names):
            raise ValueError(
                f"row {row_number} has {len(row)} values, expected {len(names)} features in this order: "
                f"{', '.join(names)}"
            )
        encoded.append([encode_value(row[i], encoders[name], name) for i, name in enumerate(names)])
    return encoded


def read_schema(directory: Path) -> dict[str, Any]:
    """Load schema.json from a directory (a SageMaker channel or the model directory)."""
    path = directory / SCHEMA_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found: the schema written by the preprocessing step is missing")
    return json.loads(path.read_text(encoding="utf-8"))


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


def read_split_csv(directory: Path, preferred_name: str) -> Any:
    """Read a split written by preprocess.py (no header, target first) from a channel directory.

    Uses ``<directory>/<preferred_name>`` when present, else every ``*.csv`` below the directory
    (SageMaker may deliver a prefix with several parts). Returns a float numpy array with at least one row.
    """
    import numpy as np  # noqa: PLC0415 - not at import time: Lambda imports this module

    path = directory / preferred_name
    files = [path] if path.is_file() else sorted(p for p in directory.rglob("*.csv") if p.is_file())
    if not files:
        raise DatasetError(f"no {preferred_name} (or any .csv file) in {directory}")
    parts = []
    for file in files:
        if file.stat().st_size == 0:
            continue
        parts.append(np.loadtxt(file, delimiter=",", dtype=float, ndmin=2))
    data = np.vstack(parts) if parts else np.empty((0, 0))
    if data.shape[0] == 0:
        raise DatasetError(f"{', '.join(str(f) for f in files)}: no rows; the split is empty")
    return data


def positive_class_scores(estimator: Any, x: Any, problem_type: str) -> Any:
    """Probability of class code 1 for binary problems (for roc_auc); None otherwise or when unavailable."""
    if problem_type != BINARY or not hasattr(estimator, "predict_proba"):
        return None
    classes = list(estimator.classes_)
    if 1 not in classes:
        return None
    return estimator.predict_proba(x)[:, classes.index(1)]


def evaluate_estimator(estimator: Any, data: Any, problem_type: str) -> dict[str, float]:
    """Metrics of ``estimator`` on a split matrix (target first, as preprocess.py writes it)."""
    y_true, x = data[:, 0], data[:, 1:]
    if is_classification(problem_type):
        y_true = y_true.astype(int)  # class codes; the estimator was fitted on integer codes
    y_pred = estimator.predict(x)
    return compute_metrics(problem_type, y_true, y_pred, positive_class_scores(estimator, x, problem_type))
