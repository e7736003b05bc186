"""Smoke test: send raw rows of the run's test split to the endpoint, as a client would, and check the answers
against the true labels.

The rows come from the processing job's raw test split (``test.csv``: header, raw values, target included;
image splits point at image files beside it). Tabular and text rows go as JSON ``{"instances": [{feature:
value}]}`` with the target left out; image rows as a JSON list of base64-encoded images.

When is an answer wrong enough to fail the deployment?
- Malformed: not ``{"predictions": [...]}``, the wrong number of predictions, a label that is not a class, a
  score that is not a finite number.
- Far below the evaluated metric (the test metrics recorded on the model package):
  classification: with n rows sent and k answered correctly, the smoke test fails when k is so low that an
  endpoint whose real accuracy were the evaluated accuracy minus ``ACCURACY_TOLERANCE`` (0.10) would answer k
  or fewer correctly less than ``SIGNIFICANCE`` (1%) of the time (one-sided binomial test). Iris, for example:
  evaluated accuracy 0.97 and 15 test rows fail below 10 correct; a model answering valid classes at random
  (about 5 of 15) fails.
  regression: it fails when the squared errors are larger than errors of ``RMSE_TOLERANCE`` (1.5) times the
  evaluated RMSE would produce in 99% of cases (chi-square bound on the sum of squared errors).
  With few rows only gross failures can be told from chance; ``smoke_test_rows`` (default 50) sets how many
  rows are sent.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

ACCURACY_TOLERANCE = 0.10
RMSE_TOLERANCE = 1.5
SIGNIFICANCE = 0.01
# z for the one-sided 99% quantile of a standard normal (Wilson-Hilferty chi-square bound).
Z_99 = 2.326
HEAD_BYTES = 262_144
# InvokeEndpoint takes at most 6 MB (4 MB serverless): the request stays below this.
MAX_REQUEST_BYTES = 3_000_000


class SmokeTestError(RuntimeError):
    """The endpoint answered wrongly (or not at all); the message quotes what came back."""


def _split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _read(s3: Any, uri: str, byte_range: str | None = None) -> bytes:
    bucket, key = _split_uri(uri)
    kwargs = {"Range": byte_range} if byte_range else {}
    body: bytes = s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()
    return body


def read_schema(s3: Any, schema_prefix: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_read(s3, schema_prefix.rstrip("/") + "/schema.json"))
    return schema


def read_test_rows(s3: Any, test_prefix: str, count: int) -> list[dict[str, str]]:
    """The first ``count`` rows of the raw test split, as dicts keyed by the header."""
    uri = test_prefix.rstrip("/") + "/test.csv"
    head = _read(s3, uri, f"bytes=0-{HEAD_BYTES - 1}")
    text = head.decode("utf-8-sig", "replace")
    records = list(csv.DictReader(io.StringIO(text)))
    if len(head) >= HEAD_BYTES and records:
        records = records[:-1]  # the byte range may have cut the last record
    rows = records[:count]
    if not rows:
        raise SmokeTestError(f"{uri} has no rows to send")
    return rows


def build_request(
    s3: Any, test_prefix: str, rows: list[dict[str, str]], schema: dict[str, Any]
) -> tuple[bytes, list[str]]:
    """The JSON body for the rows (target left out), and the true target of each row sent."""
    target = schema["target_column"]
    kinds = schema.get("feature_kinds") or {}
    images = [name for name in schema["feature_names"] if kinds.get(name) == "image"]
    instances: list[Any] = []
    truths: list[str] = []
    size = 0
    for row in rows:
        if images:
            encoded = base64.b64encode(_read(s3, f"{test_prefix.rstrip('/')}/{row[images[0]]}")).decode()
            instance: Any = encoded
            size += len(encoded) + 4
        else:
            instance = {name: (row.get(name) or None) for name in schema["feature_names"]}
            size += len(json.dumps(instance))
        if instances and size > MAX_REQUEST_BYTES:
            break
        instances.append(instance)
        truths.append(row[target])
    return json.dumps({"instances": instances}).encode(), truths


def check_format(body: bytes, rows: int, schema: dict[str, Any]) -> list[Any]:
    """The predictions, or SmokeTestError saying what is wrong with their shape."""
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


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    p = min(max(p, 0.0), 1.0)
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def chi_square_quantile_99(degrees: int) -> float:
    """The 99% quantile of chi-square(degrees), Wilson-Hilferty approximation (within 1% for degrees >= 3)."""
    term = 2 / (9 * degrees)
    return degrees * (1 - term + Z_99 * math.sqrt(term)) ** 3


def judge_classification(labels: list[str], truths: list[str], accuracy: float | None) -> dict[str, Any]:
    correct = sum(str(label) == str(truth) for label, truth in zip(labels, truths, strict=True))
    n = len(truths)
    verdict: dict[str, Any] = {"agreement": round(correct / n, 4), "correct": correct}
    if accuracy is None:
        return verdict
    floor = max(accuracy - ACCURACY_TOLERANCE, 0.0)
    chance = binomial_cdf(correct, n, floor)
    verdict.update({"evaluatedAccuracy": accuracy, "probabilityAtTolerance": round(chance, 6)})
    if chance < SIGNIFICANCE:
        raise SmokeTestError(
            f"the endpoint answered {correct} of {n} test rows correctly (agreement {correct / n:.2f}), "
            f"far below the evaluated accuracy {accuracy:.3f}: a model with accuracy {floor:.2f} would do "
            f"this badly with probability {chance:.2g} (< {SIGNIFICANCE}). The served model does not behave "
            "like the evaluated one"
        )
    return verdict


def judge_regression(scores: list[float], truths: list[str], rmse: float | None) -> dict[str, Any]:
    errors = [score - float(truth) for score, truth in zip(scores, truths, strict=True)]
    n = len(errors)
    observed = math.sqrt(sum(e * e for e in errors) / n)
    verdict: dict[str, Any] = {"rmse": round(observed, 6)}
    if rmse is None:
        return verdict
    allowed = RMSE_TOLERANCE * max(rmse, 1e-12)
    bound = allowed * math.sqrt(chi_square_quantile_99(n) / n)
    verdict.update({"evaluatedRmse": rmse, "rmseBound": round(bound, 6)})
    if observed > bound:
        raise SmokeTestError(
            f"the endpoint's RMSE on {n} test rows is {observed:.4g}, far above the evaluated RMSE "
            f"{rmse:.4g} "
            f"(bound {bound:.4g}: {RMSE_TOLERANCE}x the evaluated RMSE at 99%). The served model does not "
            "behave like the evaluated one"
        )
    return verdict


def run(
    s3: Any,
    runtime: Any,
    *,
    endpoint: str,
    test_prefix: str,
    schema_prefix: str,
    count: int,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Send raw test rows, check the answers' shape, then their agreement with the true targets."""
    schema = read_schema(s3, schema_prefix)
    body, truths = build_request(s3, test_prefix, read_test_rows(s3, test_prefix, count), schema)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Accept="application/json", Body=body
        )
    except ClientError as error:
        raise SmokeTestError(f"invoking {endpoint} failed: {error}") from None
    predictions = check_format(response["Body"].read(), len(truths), schema)
    metrics = metrics or {}
    if schema.get("class_labels"):
        verdict = judge_classification([p["label"] for p in predictions], truths, metrics.get("accuracy"))
    else:
        verdict = judge_regression([float(p["score"]) for p in predictions], truths, metrics.get("rmse"))
    return {"endpointName": endpoint, "rows": len(truths), **verdict, "predictions": predictions[:3]}
