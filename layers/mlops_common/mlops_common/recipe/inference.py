"""Serving handlers for SageMaker's scikit-learn container (model_fn / input_fn / predict_fn / output_fn).

The container calls ``model_fn(model_dir)`` once, then per request ``input_fn(body, content_type)``,
``predict_fn(data, model)`` and ``output_fn(prediction, accept)``. ``model_dir`` is /opt/ml/model: the
unpacked model.tar.gz from train.py. The model is the fitted pipeline (recipe_pipeline.py): it takes raw
values, as a client has them, and does every conversion learnt in training itself.

Requests (raw feature values, no target; strings for categories; empty / null / absent = missing):
    text/csv          one row per line, features in schema order; a header row of the feature names is skipped
    application/json  {"instances": [{"<feature>": value, ...}, ...]} or {"instances": [[v1, v2, ...], ...]},
                      or the bare list; an object's key for the target column is ignored
    image/jpeg, image/png, application/x-image   one encoded image (image models)
    application/json  for image models also a list of base64-encoded images (``["iVBOR...", ...]``, or
                      ``{"instances": [...]}``, items may be ``{"b64": "..."}``)
Responses:
    text/csv          one prediction per line (the class label, or the regression score)
    application/json  classification: {"predictions": [{"label": "<class>", "probabilities": {"<class>": p}}]}
                      regression:     {"predictions": [{"score": <float>}]}

A request the model cannot read is answered with a 4xx whose body says what to send: 400 (bad rows or
values), 415 (content type), 406 (accept). SageMaker's scikit-learn container turns any exception raised in
these handlers into a 500 without the message, so input_fn and predict_fn return the refusal as a value and
output_fn answers it with the container's own Response class and a 4xx status. Where that class is absent
(a plain local server), output_fn raises ``ValueError`` with the message instead.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import joblib

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recipe_common as rc
import recipe_pipeline as rp

CSV = "text/csv"
JSON = "application/json"
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")
TABULAR_TYPES = (CSV, JSON)
BAD_REQUEST, NOT_ACCEPTABLE, UNSUPPORTED_MEDIA_TYPE = 400, 406, 415


class Refusal:
    """A request answered with an HTTP 4xx and a message saying what to send instead."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load the fitted pipeline and the schema (feature names and kinds, classes)."""
    directory = Path(model_dir)
    schema = rc.read_schema(directory)
    return {"pipeline": joblib.load(directory / rc.MODEL_FILE), "schema": schema}


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def input_fn(body: Any, content_type: str) -> Any:
    """Parse the body into raw rows (a list of values or a dict per row), or a Refusal."""
    media_type = _media_type(content_type)
    try:
        if media_type in IMAGE_TYPES:
            if not isinstance(body, (bytes, bytearray)) or not body:
                raise rp.RequestError(f"empty {media_type} body: send the encoded image bytes")
            return {"images": [bytes(body)]}
        if media_type not in TABULAR_TYPES:
            return Refusal(
                UNSUPPORTED_MEDIA_TYPE,
                f"unsupported content type {content_type!r}: send {', '.join(TABULAR_TYPES + IMAGE_TYPES)}",
            )
        text = body.decode("utf-8-sig") if isinstance(body, (bytes, bytearray)) else str(body)
        if media_type == CSV:
            return {"csv": _csv_rows(text)}
        return {"json": _json_instances(text)}
    except (rp.RequestError, UnicodeDecodeError) as error:
        return Refusal(BAD_REQUEST, str(error))


def _csv_rows(text: str) -> list[list[str]]:
    # Blank lines are skipped; a line of empty fields (",,") is a row whose values are all missing.
    rows = [row for row in csv.reader(io.StringIO(text)) if len(row) > 1 or (row and row[0].strip())]
    if not rows:
        raise rp.RequestError(
            "empty text/csv body: send one row of feature values per line, without the target"
        )
    return rows


def _json_instances(text: str) -> list[Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise rp.RequestError(
            f'body is not valid JSON ({exc}): send {{"instances": [{{"<feature>": value, ...}}]}}'
        ) from exc
    instances = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(instances, list) or not instances:
        raise rp.RequestError(
            'send {"instances": [{"<feature>": value, ...}, ...]} or {"instances": [[v1, v2, ...], ...]} '
            "with at least one instance"
        )
    return instances


def _records(data: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per row keyed by feature name (absent features are missing values)."""
    names = schema["feature_names"]
    kinds = schema["feature_kinds"]
    image_features = [name for name in names if kinds[name] == rp.IMAGE]
    if "images" in data:
        if not image_features:
            raise rp.RequestError(
                f"this model reads {', '.join(sorted(set(kinds.values())))} features, not images: send "
                f"{' or '.join(TABULAR_TYPES)}"
            )
        return [{image_features[0]: image} for image in data["images"]]
    if "csv" in data:
        rows = data["csv"]
        if [cell.strip() for cell in rows[0]] == names:
            rows = rows[1:]
        if not rows:
            raise rp.RequestError("no rows to predict: the body held only a header")
        return [_positional(row, names, number) for number, row in enumerate(rows, start=1)]
    records = []
    for number, instance in enumerate(data["json"], start=1):
        if image_features and isinstance(instance, (str, dict)) and _base64_of(instance) is not None:
            records.append({image_features[0]: _decode_image(_base64_of(instance), number)})
        elif isinstance(instance, dict):
            unknown = [key for key in instance if key not in names and key != schema["target_column"]]
            if unknown:
                raise rp.RequestError(
                    f"instance {number} has unknown features {unknown}; the features are: {', '.join(names)}"
                )
            records.append({name: instance.get(name) for name in names})
        elif isinstance(instance, list):
            records.append(_positional(instance, names, number))
        else:
            raise rp.RequestError(
                f"instance {number} must be an object keyed by feature or a list of feature values"
                + (", or a base64-encoded image" if image_features else "")
            )
    return records


def _positional(row: list[Any], names: list[str], number: int) -> dict[str, Any]:
    if len(row) != len(names):
        raise rp.RequestError(
            f"row {number} has {len(row)} values, expected {len(names)} features (no target) in this order: "
            f"{', '.join(names)}"
        )
    return dict(zip(names, row))  # noqa: B905 - the container runs Python 3.9


def _base64_of(instance: Any) -> str | None:
    if isinstance(instance, str):
        return instance
    if isinstance(instance, dict) and len(instance) == 1:
        value = instance.get("b64", instance.get("image"))
        return value if isinstance(value, str) else None
    return None


def _decode_image(text: str, number: int) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise rp.RequestError(f"instance {number} is not base64-encoded image bytes ({exc})") from exc


def predict_fn(data: Any, model: dict[str, Any]) -> Any:
    """Run the fitted pipeline on the raw rows; class labels come back as they were in the training data."""
    if isinstance(data, Refusal):
        return data
    schema, pipeline = model["schema"], model["pipeline"]
    try:
        frame = rp.prepare_frame(_records(data, schema), schema)
        if not rc.is_classification(schema["problem_type"]):
            return {"scores": [float(value) for value in pipeline.predict(frame)]}
        result: dict[str, Any] = {"labels": [str(label) for label in pipeline.predict(frame)]}
        if hasattr(pipeline, "predict_proba"):
            classes = [str(label) for label in pipeline.classes_]
            result["probabilities"] = [
                {label: round(float(p), 6) for label, p in zip(classes, row)}  # noqa: B905 - Python 3.9
                for row in pipeline.predict_proba(frame)
            ]
        return result
    except rp.RequestError as error:
        return Refusal(BAD_REQUEST, str(error))


def _choose_accept(accept: str | None) -> str | None:
    """The first supported type in an Accept header; JSON for none or */*; None when nothing fits."""
    for part in (accept or "").split(","):
        media_type = _media_type(part)
        if media_type in TABULAR_TYPES:
            return media_type
        if media_type in ("", "*/*", "application/*"):
            return JSON
    return None


def _refuse(refusal: Refusal) -> Any:
    """The container's Response with a 4xx status when the container's serving stack runs this module; a
    ValueError otherwise (a plain local server, or the handlers called directly where the toolkit is merely
    installed)."""
    framework = sys.modules.get("sagemaker_containers.beta.framework")
    if framework is None:
        raise ValueError(refusal.message)
    worker = framework.worker
    body = json.dumps({"error": refusal.message})
    return worker.Response(response=body, status=refusal.status, mimetype=JSON)


def output_fn(prediction: Any, accept: str | None) -> Any:
    """Serialize predictions as ``(body, content_type)``; a Refusal becomes its 4xx answer."""
    if isinstance(prediction, Refusal):
        return _refuse(prediction)
    media_type = _choose_accept(accept)
    if media_type is None:
        return _refuse(
            Refusal(
                NOT_ACCEPTABLE, f"unsupported accept type {accept!r}: ask for {' or '.join(TABULAR_TYPES)}"
            )
        )
    if media_type == CSV:
        values = prediction.get("labels", prediction.get("scores", []))
        return "".join(f"{value}\n" for value in values), CSV
    if "scores" in prediction:
        predictions = [{"score": score} for score in prediction["scores"]]
    else:
        probabilities = prediction.get("probabilities") or [None] * len(prediction["labels"])
        predictions = [
            {"label": label, "probabilities": probs} if probs is not None else {"label": label}
            for label, probs in zip(prediction["labels"], probabilities)  # noqa: B905 - Python 3.9
        ]
    return json.dumps({"predictions": predictions}), JSON
