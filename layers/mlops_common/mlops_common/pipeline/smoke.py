"""Smoke test: send rows of the run's test split to the endpoint and check the answer makes sense."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError


class SmokeTestError(RuntimeError):
    """The endpoint answered wrongly (or not at all); the message quotes what came back."""


def _read(s3: Any, uri: str, byte_range: str | None = None) -> bytes:
    parsed = urlparse(uri)
    kwargs = {"Range": byte_range} if byte_range else {}
    return s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), **kwargs)["Body"].read()


def test_rows(s3: Any, test_prefix: str, count: int) -> list[str]:
    """The first rows of test.csv without their target (contract A: target first, no header)."""
    text = _read(s3, test_prefix.rstrip("/") + "/test.csv", "bytes=0-65535").decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(text) >= 65536 and lines:
        lines = lines[:-1]  # the last line may be cut by the byte range
    rows = [line.split(",", 1)[1] for line in lines[:count] if "," in line]
    if not rows:
        raise SmokeTestError(f"{test_prefix}test.csv has no rows with features to send")
    return rows


def read_schema(s3: Any, schema_prefix: str) -> dict[str, Any]:
    return json.loads(_read(s3, schema_prefix.rstrip("/") + "/schema.json"))


def check_answer(body: bytes, rows: int, schema: dict[str, Any]) -> list[Any]:
    """The predictions, or SmokeTestError saying what is wrong with them."""
    preview = body[:300].decode("utf-8", "replace")
    try:
        predictions = json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError):
        raise SmokeTestError(f'expected JSON {{"predictions": [...]}}, got: {preview}') from None
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise SmokeTestError(
            f"sent {rows} row(s), got {len(predictions) if isinstance(predictions, list) else 0} "
            f"prediction(s): {preview}"
        )
    labels = schema.get("class_labels")
    for prediction in predictions:
        if labels:
            if not isinstance(prediction, dict) or str(prediction.get("label")) not in {
                str(x) for x in labels
            }:
                raise SmokeTestError(f"prediction {prediction!r} is not one of the classes {labels}")
        else:
            score = prediction.get("score") if isinstance(prediction, dict) else None
            if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
                raise SmokeTestError(f"prediction {prediction!r} has no finite score")
    return predictions


def run(
    s3: Any, runtime: Any, *, endpoint: str, test_prefix: str, schema_prefix: str, count: int
) -> dict[str, Any]:
    rows = test_rows(s3, test_prefix, count)
    schema = read_schema(s3, schema_prefix)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="text/csv",
            Accept="application/json",
            Body="\n".join(rows).encode(),
        )
    except ClientError as error:
        raise SmokeTestError(f"invoking {endpoint} failed: {error}") from None
    predictions = check_answer(response["Body"].read(), len(rows), schema)
    return {"endpointName": endpoint, "rows": len(rows), "predictions": predictions[:3]}
