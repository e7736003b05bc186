"""Every kind of data the default recipe trains, end to end offline: upload, pipeline, endpoint, answers.

The datasets are generated here (scikit-learn's bundled digits for images), small, and uploaded together so
their runs share the job slots. Each one checks the client contract: raw values in, right answers out.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from sklearn.datasets import load_digits

from offline.embedded import EmbeddedAws
from tests.e2e.test_pipeline import endpoint_name, failure_details

COLOURS = ("red", "green", "blue")
SIZES = ("small", "medium", "large")
POSITIVE = ("wonderful", "delightful", "brilliant", "moving", "charming", "superb", "lovely", "gripping")
NEGATIVE = ("boring", "awful", "dreadful", "dull", "tedious", "clumsy", "terrible", "lifeless")
OPENINGS = ("This film was", "The story felt", "Honestly the movie is", "I found it", "The acting was")


def decision(colour: str | None, size: str | None, weight: float | None) -> str:
    """The generating rule of the categorical dataset (missing values are part of it)."""
    if colour in ("red", "green") and size != "small":
        return "approve"
    if colour is None and weight is not None and weight > 80:
        return "approve"
    return "reject"


def categorical_rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        colour = None if rng.random() < 0.1 else rng.choice(COLOURS)
        size = None if rng.random() < 0.1 else rng.choice(SIZES)
        weight = None if rng.random() < 0.1 else round(rng.uniform(10, 100), 1)
        rows.append(
            {"colour": colour, "size": size, "weight": weight, "decision": decision(colour, size, weight)}
        )
    return rows


def as_csv(rows: list[dict[str, Any]], columns: list[str], header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return buffer.getvalue()


def sentence(rng: random.Random, words: tuple[str, ...]) -> str:
    first, second = rng.sample(words, 2)
    return f"{rng.choice(OPENINGS)} {first} and {second}"


def digit_png(pixels: Any) -> bytes:
    """A digits image (8x8, values 0-16) as a 32x32 grayscale PNG."""
    image = Image.fromarray((pixels * 15.9375).astype("uint8"), mode="L").resize((32, 32))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def put(aws: EmbeddedAws, key: str, body: str | bytes) -> None:
    aws.client("s3").put_object(
        Bucket=aws.outputs["InputBucketName"], Key=key, Body=body.encode() if isinstance(body, str) else body
    )


def upload_categorical(aws: EmbeddedAws) -> None:
    put(aws, "training/e2e-cat/pipeline.json", json.dumps({"target_column": "decision"}))
    put(
        aws,
        "training/e2e-cat/orders.csv",
        as_csv(categorical_rows(400, 1), ["colour", "size", "weight", "decision"]),
    )


def upload_regression(aws: EmbeddedAws) -> None:
    rng = random.Random(2)
    rows = []
    for _ in range(200):
        size = rng.choice(SIZES)
        area = round(rng.uniform(20, 200), 1)
        rows.append({"size": size, "area": area, "price": round(3 * area + 100 * SIZES.index(size), 2)})
    put(aws, "training/e2e-reg/pipeline.json", json.dumps({"target_column": "price"}))
    put(aws, "training/e2e-reg/flats.csv", as_csv(rows, ["size", "area", "price"]))


def upload_text_jsonl(aws: EmbeddedAws) -> None:
    """The seed documents' example shape: {"text": "This is a positive review", "label": 1}."""
    rng = random.Random(3)
    lines = [json.dumps({"text": sentence(rng, POSITIVE), "label": 1}) for _ in range(60)]
    lines += [json.dumps({"text": sentence(rng, NEGATIVE), "label": 0}) for _ in range(60)]
    rng.shuffle(lines)
    put(aws, "training/e2e-jsonl/reviews.jsonl", "\n".join(lines) + "\n")


def upload_text_folders(aws: EmbeddedAws) -> None:
    rng = random.Random(4)
    for label, words in (("positive", POSITIVE), ("negative", NEGATIVE)):
        for number in range(40):
            put(aws, f"training/e2e-txt/{label}/{number:03d}.txt", sentence(rng, words) + ".\n")
    put(aws, "training/e2e-txt/_READY", "")


def upload_digits(aws: EmbeddedAws) -> None:
    digits = load_digits()
    for index in range(300):  # the first 300 images: about 30 per digit
        put(
            aws,
            f"training/e2e-digits/{digits.target[index]}/{index:04d}.png",
            digit_png(digits.images[index]),
        )
    put(aws, "training/e2e-digits/_READY", "")


UPLOADS: dict[str, Callable[[EmbeddedAws], None]] = {
    "e2e-cat": upload_categorical,
    "e2e-reg": upload_regression,
    "e2e-jsonl": upload_text_jsonl,
    "e2e-txt": upload_text_folders,
    "e2e-digits": upload_digits,
}


# Five runs share two job slots: on a loaded machine they need more than one run's timeout.
RUNS_TIMEOUT = 600.0


@pytest.fixture(scope="module")
def trained(aws: EmbeddedAws) -> dict[str, dict[str, Any]]:
    """Upload every dataset, then wait for all their runs: dataset -> finished execution."""
    since = time.time() - 1
    for upload in UPLOADS.values():
        upload(aws)
    aws.state.registry.wait_for_async_invocations(timeout=60)
    arn = aws.outputs["PipelineStateMachineArn"]
    finished = aws.wait_for_executions(arn, len(UPLOADS), RUNS_TIMEOUT, since)
    runs = {}
    for dataset in UPLOADS:
        [run] = [e for e in finished if e["name"].startswith(f"{dataset}-")]
        runs[dataset] = run
    return runs


def succeeded(aws: EmbeddedAws, trained: dict[str, dict[str, Any]], dataset: str) -> str:
    run = trained[dataset]
    assert run["status"] == "SUCCEEDED", failure_details(aws, run)
    return endpoint_name(aws, dataset)


def invoke(aws: EmbeddedAws, endpoint: str, body: bytes | str, content_type: str) -> list[dict[str, Any]]:
    response = aws.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint,
        ContentType=content_type,
        Accept="application/json",
        Body=body.encode() if isinstance(body, str) else body,
    )
    return json.loads(response["Body"].read())["predictions"]


def agreement(predictions: list[dict[str, Any]], truths: list[str]) -> float:
    return sum(p["label"] == t for p, t in zip(predictions, truths, strict=True)) / len(truths)


def test_string_categories_and_missing_values_predict_the_rule(aws: EmbeddedAws, trained: dict) -> None:
    endpoint = succeeded(aws, trained, "e2e-cat")  # the run's smoke test passed on raw test rows
    fresh = categorical_rows(120, seed=99)
    truths = [row["decision"] for row in fresh]
    features = ["colour", "size", "weight"]

    from_csv = invoke(aws, endpoint, as_csv(fresh, features, header=False), "text/csv")
    instances = [{name: row[name] for name in features} for row in fresh]
    from_json = invoke(aws, endpoint, json.dumps({"instances": instances}), "application/json")
    assert agreement(from_csv, truths) >= 0.95
    assert [p["label"] for p in from_json] == [p["label"] for p in from_csv]

    # Rows pre-encoded as numbers (category codes, as a hand-written encoder would send them) are unknown
    # categories to the fitted pipeline: the endpoint does not silently agree with the rule.
    encoded = [
        {
            "colour": None if row["colour"] is None else COLOURS.index(row["colour"]),
            "size": None if row["size"] is None else SIZES.index(row["size"]),
            "weight": row["weight"],
        }
        for row in fresh
    ]
    from_codes = invoke(aws, endpoint, json.dumps({"instances": encoded}), "application/json")
    assert agreement(from_codes, truths) < agreement(from_csv, truths) - 0.25


def test_reports_are_in_the_output_bucket_with_embedded_plots(aws: EmbeddedAws, trained: dict) -> None:
    s3 = aws.client("s3")
    bucket = aws.outputs["OutputBucketName"]
    for dataset, plots in (
        ("e2e-cat", {"confusion_matrix", "roc_curves", "precision_recall_curves", "per_class_metrics"}),
        ("e2e-reg", {"predicted_vs_actual", "residuals"}),
    ):
        succeeded(aws, trained, dataset)
        prefix = f"runs/{dataset}/"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
        [report_key] = [k for k in keys if k.endswith("/evaluation/report/report.html")]
        names = {k.rsplit("/", 1)[1].removesuffix(".png") for k in keys if k.endswith(".png")}
        assert plots | {"feature_importance", "champion_vs_challenger"} <= names
        page = s3.get_object(Bucket=bucket, Key=report_key)["Body"].read().decode()
        assert page.count('src="data:image/png;base64,') == len(names)
        assert "http://" not in page and "https://" not in page and "<script" not in page
        evaluation = json.loads(
            s3.get_object(Bucket=bucket, Key=report_key.replace("report/report.html", "evaluation.json"))[
                "Body"
            ].read()
        )
        assert evaluation["report"] == "report/report.html"
        if dataset == "e2e-cat":
            matrix = evaluation["confusion_matrix"]
            assert matrix["labels"] == ["approve", "reject"]
            assert len(matrix["matrix"]) == 2 and all(len(row) == 2 for row in matrix["matrix"])
            assert sum(map(sum, matrix["matrix"])) == evaluation["test_rows"]


UNSEEN_POSITIVE = [
    "A wonderful, moving story with superb acting",
    "Charming and delightful from start to end",
]
UNSEEN_NEGATIVE = ["A dull and tedious mess", "Terrible pacing, awful dialogue, boring plot"]


@pytest.mark.parametrize(
    ("dataset", "positive", "negative"), [("e2e-jsonl", "1", "0"), ("e2e-txt", "positive", "negative")]
)
def test_text_datasets_classify_unseen_sentences(
    aws: EmbeddedAws, trained: dict, dataset: str, positive: str, negative: str
) -> None:
    endpoint = succeeded(aws, trained, dataset)
    sentences = UNSEEN_POSITIVE + UNSEEN_NEGATIVE
    predictions = invoke(
        aws, endpoint, json.dumps({"instances": [{"text": s} for s in sentences]}), "application/json"
    )
    assert [p["label"] for p in predictions] == [positive] * 2 + [negative] * 2
    as_csv_rows = "\n".join(f'"{s}"' for s in sentences) + "\n"
    assert [p["label"] for p in invoke(aws, endpoint, as_csv_rows, "text/csv")] == [
        p["label"] for p in predictions
    ]


def test_digit_images_are_classified_from_png_bodies(aws: EmbeddedAws, trained: dict) -> None:
    endpoint = succeeded(aws, trained, "e2e-digits")
    digits = load_digits()
    unseen = range(1500, 1540)  # never uploaded
    answers = [invoke(aws, endpoint, digit_png(digits.images[i]), "image/png")[0]["label"] for i in unseen]
    correct = sum(answer == str(digits.target[i]) for answer, i in zip(answers, unseen, strict=True))
    assert correct >= 0.8 * len(unseen)
    batch = [base64.b64encode(digit_png(digits.images[i])).decode() for i in unseen[:5]]
    from_json = invoke(aws, endpoint, json.dumps(batch), "application/json")
    assert [p["label"] for p in from_json] == answers[:5]
