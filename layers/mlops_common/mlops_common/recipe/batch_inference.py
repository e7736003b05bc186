"""Batch Transform handlers: the serving handlers' predictions, one answer line per CSV record, and an error
marker instead of a failed job for a record the model cannot read.

SageMaker Batch Transform sends mini-batches of CSV records (SplitType Line) to the model container and fails
the whole job when the container answers an error to any of them. These handlers wrap the serving program's
handlers (``inference.py``, or the module named by MLOPS_SERVING_MODULE): a mini-batch is predicted in one
call; when the model refuses it, it is halved until the refused records are alone, and each of those is
answered with ``"ERROR: <reason>"`` (one quoted CSV field, so a joined output line stays one column wider).
A header line (the feature names) is answered with ``prediction``, so a joined header names the new column.

Run in SageMaker's scikit-learn container (Python 3.9): no newer syntax at run time.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import os
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

CSV = "text/csv"
ERROR_PREFIX = "ERROR: "
HEADER_ANSWER = "prediction"
# The serving handlers number rows within their request; a record is predicted alone, so that number says
# nothing: the batch report names the file and line instead.
_ROW_NUMBER = re.compile(r"^(row|instance) \d+ ")

_serving = importlib.import_module(os.environ.get("MLOPS_SERVING_MODULE", "inference"))


class RecordError(ValueError):
    """The model refused a record; the message says why."""


def model_fn(model_dir: str) -> Any:
    return _serving.model_fn(model_dir)


def input_fn(body: Any, content_type: str) -> list[str]:
    """The mini-batch's records, one CSV line each (blank lines are not records)."""
    if (content_type or "").split(";", 1)[0].strip().lower() != CSV:
        raise ValueError(
            f"batch predictions read {CSV}, not {content_type!r}: set the transform's ContentType"
        )
    text = body.decode("utf-8-sig") if isinstance(body, (bytes, bytearray)) else str(body)
    return [line for line in text.splitlines() if line.strip()]


def _refusal_message(value: Any) -> str | None:
    """The message of a refusal the serving handlers return as a value (status + message), else None."""
    if hasattr(value, "status") and hasattr(value, "message"):
        return str(value.message)
    return None


def _predict(text: str, model: Any) -> list[str]:
    """The serving handlers' text/csv answer lines for these records; RecordError when they refuse them."""
    try:
        data = _serving.input_fn(text, CSV)
        refused = _refusal_message(data)
        if refused is None:
            prediction = _serving.predict_fn(data, model)
            refused = _refusal_message(prediction)
    except ValueError as error:
        raise RecordError(str(error)) from error
    if refused is not None:
        raise RecordError(refused)
    body = _serving.output_fn(prediction, CSV)
    if isinstance(body, tuple):
        body = body[0]
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")
    return [line for line in str(body).splitlines() if line.strip()]


def _error_field(message: str) -> str:
    reason = _ROW_NUMBER.sub("the row ", " ".join(message.split()))
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="").writerow([ERROR_PREFIX + reason])
    return buffer.getvalue()


def _is_header(line: str, model: Any) -> bool:
    schema = model.get("schema") if isinstance(model, dict) else None
    names = (schema or {}).get("feature_names")
    cells = next(csv.reader([line]), [])
    return bool(names) and [cell.strip() for cell in cells] == list(names)


def predict_fn(lines: list[str], model: Any) -> list[str]:
    """One answer per record: the prediction, ``prediction`` for a header, or an error marker."""
    answers: list[Any] = [HEADER_ANSWER if _is_header(line, model) else None for line in lines]
    pending = [i for i, answer in enumerate(answers) if answer is None]
    if not pending:
        return answers
    with _one_thread():
        _answer_range(lines, pending, answers, model)
    return answers


def _one_thread() -> Any:
    """Estimators fitted with n_jobs=-1 start a thread per core on every predict call: fine for one large
    call, ruinous for the many small calls that isolate unreadable records. Same answers, one thread."""
    try:
        import joblib  # noqa: PLC0415 - ships with scikit-learn in the container
    except ImportError:
        return contextlib.nullcontext()
    return joblib.parallel_backend("sequential")


def _answer_range(lines: list[str], indexes: list[int], answers: list[Any], model: Any) -> None:
    """Predict these records in one call; when the model refuses them, halve and retry, down to single
    records, which get an error marker. A few bad rows in a large mini-batch cost about 2 * log2(n) calls
    each, not one call per row."""
    try:
        predicted = _predict("\n".join(lines[i] for i in indexes), model)
    except RecordError as error:
        if len(indexes) == 1:
            answers[indexes[0]] = _error_field(str(error))
            return
        predicted = []
    if len(predicted) == len(indexes):
        for i, answer in zip(indexes, predicted):  # noqa: B905 - Python 3.9 in the container
            answers[i] = answer
        return
    if len(indexes) == 1:
        answers[indexes[0]] = _error_field(f"the model answered {len(predicted)} lines for one row")
        return
    middle = len(indexes) // 2
    _answer_range(lines, indexes[:middle], answers, model)
    _answer_range(lines, indexes[middle:], answers, model)


def output_fn(answers: list[str], accept: str) -> tuple[str, str]:
    """One line per record, in order (Batch Transform joins line i with record i)."""
    return "".join(f"{answer}\n" for answer in answers), CSV
