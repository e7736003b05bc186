"""recipe/batch_inference.py around a serving module: one answer per record, markers, header, refusals."""

from __future__ import annotations

import csv
import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

# A serving module with the default recipe's contract: ValueError for a bad request, or a refusal value.
STUB = "batch_stub_serving"


class Refusal:
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def _input_fn(body: str, content_type: str) -> Any:
    rows = [line.split(",") for line in body.splitlines()]
    bad = next((n for n, row in enumerate(rows, start=1) if len(row) != 2), None)
    if bad is not None:
        return Refusal(400, f"row {bad} has {len(rows[bad - 1])} values, expected 2")
    return rows


def _predict_fn(rows: Any, model: Any) -> Any:
    try:
        return [float(a) + float(b) for a, b in rows]
    except ValueError as error:
        raise ValueError(f"row 1 holds a value that is not a number ({error})") from None


def _output_fn(values: list[float], accept: str) -> tuple[str, str]:
    return "".join(f"{v:g}\n" for v in values), "text/csv"


@pytest.fixture
def batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    stub = types.ModuleType(STUB)
    stub.model_fn = lambda model_dir: {"schema": {"feature_names": ["a", "b"]}}  # type: ignore[attr-defined]
    stub.input_fn, stub.predict_fn, stub.output_fn = _input_fn, _predict_fn, _output_fn  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, STUB, stub)
    monkeypatch.setenv("MLOPS_SERVING_MODULE", STUB)
    sys.modules.pop("mlops_common.recipe.batch_inference", None)
    module = importlib.import_module("mlops_common.recipe.batch_inference")
    yield module
    sys.modules.pop("mlops_common.recipe.batch_inference", None)


def answer(batch: Any, body: str) -> list[str]:
    model = batch.model_fn("/opt/ml/model")
    text, content_type = batch.output_fn(
        batch.predict_fn(batch.input_fn(body, "text/csv"), model), "text/csv"
    )
    assert content_type == "text/csv"
    return text.splitlines()


def test_a_readable_mini_batch_is_predicted_in_one_call(batch: Any) -> None:
    assert answer(batch, "a,b\n1,2\n\n3,4\n") == ["prediction", "3", "7"]


def test_unreadable_records_get_a_marker_and_the_others_a_prediction(batch: Any) -> None:
    lines = answer(batch, '1,2\n5\nx,1\n3,4\n"quoted ""it""",9\n')
    assert lines[0] == "3"
    assert lines[1] == '"ERROR: the row has 1 values, expected 2"'
    assert next(csv.reader([lines[2]]))[0].startswith("ERROR: the row holds a value that is not a number")
    assert lines[3] == "7"
    assert len(lines) == 5
    [field] = next(csv.reader([lines[4]]))
    assert field.startswith("ERROR: ")


def test_batches_read_csv_only(batch: Any) -> None:
    with pytest.raises(ValueError, match="batch predictions read text/csv"):
        batch.input_fn("{}", "application/json")
