"""Serving handlers for SageMaker's scikit-learn container (sagemaker-inference handler contract).

The container calls ``model_fn(model_dir)`` once, then per request ``input_fn(body, content_type)``,
``predict_fn(data, model)`` and ``output_fn(prediction, accept)``. ``model_dir`` is /opt/ml/model: the
unpacked model.tar.gz from train.py (model.joblib, schema.json, code/inference.py, code/recipe_common.py).

Requests (raw feature values, no target; encoded exactly as preprocessing encoded the training data):
    text/csv          one row per line, features in schema order; a header row of the feature names is skipped
    application/json  {"instances": [[v1, v2, ...], ...]} or {"instances": [{"<feature>": value, ...}, ...]}
Responses:
    text/csv          one prediction per line (the original class label, or the regression score)
    application/json  classification: {"predictions": [{"label": "<class>", "probabilities": {"<class>": p}}]}
                      regression:     {"predictions": [{"score": <float>}]}
Bad input raises ValueError whose message says what to send. ``output_fn`` returns ``(body, content_type)``,
the tuple both SageMaker serving stacks (sagemaker-containers and sagemaker-inference) accept.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recipe_common as rc

CSV = "text/csv"
JSON = "application/json"
SUPPORTED = (CSV, JSON)
MAX_ERRORS_SHOWN = 3


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load the estimator and the schema that says how to encode requests."""
    directory = Path(model_dir)
    schema = rc.read_schema(directory)
    return {"estimator": joblib.load(directory / rc.MODEL_FILE), "schema": schema}


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def input_fn(body: Any, content_type: str) -> dict[str, Any]:
    """Parse a request into raw rows; encoding happens in predict_fn, which has the schema."""
    text = body.decode("utf-8-sig") if isinstance(body, (bytes, bytearray)) else str(body)
    media_type = _media_type(content_type)
    if media_type == CSV:
        return {"rows": _csv_rows(text)}
    if media_type == JSON:
        return {"instances": _json_instances(text)}
    raise ValueError(f"unsupported content type {content_type!r}: send {' or '.join(SUPPORTED)}")


def _csv_rows(text: str) -> list[list[str]]:
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError("empty text/csv body: send one row of feature values per line, without the target")
    return rows


def _json_instances(text: str) -> list[Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f'body is not valid JSON ({exc}): send {{"instances": [[...], ...]}}') from exc
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise ValueError(
            'send {"instances": [[v1, v2, ...], ...]} or {"instances": [{"<feature>": value, ...}, ...]} '
            "with at least one instance"
        )
    return instances


def _rows_from_request(data: dict[str, Any], names: list[str]) -> list[list[Any]]:
    if "rows" in data:
        rows = data["rows"]
        header = [cell.strip() for cell in rows[0]]
        return rows[1:] if header == names else rows
    rows = []
    for number, instance in enumerate(data["instances"], start=1):
        if isinstance(instance, dict):
            missing = [name for name in names if name not in instance]
            if missing:
                raise ValueError(
                    f"instance {number} lacks features {missing}; expected keys: {', '.join(names)}"
                )
            rows.append([instance[name] for name in names])
        elif isinstance(instance, list):
            rows.append(instance)
        else:
            raise ValueError(
                f"instance {number} must be a list of feature values or an object keyed by feature"
            )
    return rows


def predict_fn(data: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """Encode the rows with the training encoders and predict; classes map back to their original labels."""
    schema, estimator = model["schema"], model["estimator"]
    rows = _rows_from_request(data, schema["feature_names"])
    if not rows:
        raise ValueError("no rows to predict: the body held only a header")
    x = np.asarray(rc.encode_rows(rows, schema), dtype=float)
    if not rc.is_classification(schema["problem_type"]):
        return {"scores": [float(value) for value in estimator.predict(x)]}
    labels = schema["class_labels"]
    codes = [int(code) for code in estimator.classes_]
    result: dict[str, Any] = {"labels": [labels[int(code)] for code in estimator.predict(x)]}
    if hasattr(estimator, "predict_proba"):
        result["probabilities"] = [
            {labels[code]: round(float(p), 6) for code, p in zip(codes, row)}  # noqa: B905 - py3.9 container
            for row in estimator.predict_proba(x)
        ]
    return result


def _choose_accept(accept: str | None) -> str:
    """The first supported type in an Accept header; JSON for none or */*."""
    for part in (accept or "").split(","):
        media_type = _media_type(part)
        if media_type in SUPPORTED:
            return media_type
        if media_type in ("", "*/*", "application/*"):
            return JSON
    raise ValueError(f"unsupported accept type {accept!r}: ask for {' or '.join(SUPPORTED)}")


def output_fn(prediction: dict[str, Any], accept: str | None) -> tuple[str, str]:
    """Serialize predictions as ``(body, content_type)``."""
    media_type = _choose_accept(accept)
    if media_type == CSV:
        values = prediction.get("labels", prediction.get("scores", []))
        return "".join(f"{value}\n" for value in values), CSV
    if "scores" in prediction:
        predictions = [{"score": score} for score in prediction["scores"]]
    else:
        probabilities = prediction.get("probabilities") or [None] * len(prediction["labels"])
        predictions = [
            {"label": label, "probabilities": probs} if probs is not None else {"label": label}
            for label, probs in zip(prediction["labels"], probabilities)  # noqa: B905 - py3.9 container
        ]
    return json.dumps({"predictions": predictions}), JSON
