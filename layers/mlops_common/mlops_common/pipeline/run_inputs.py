"""What a run reads from S3 besides its manifest: the listed version of pipeline.json, a text sample to
detect the data format, and a custom recipe's files."""

from __future__ import annotations

from typing import Any

from mlops_common.pipeline import snapshot
from mlops_common.pipeline.data_formats import CONFIG_FILE, DetectedFormat, detect_format
from mlops_common.pipeline.run_config import RunConfig, parse_overrides, resolve
from mlops_common.pipeline.snapshot import Entry
from mlops_common.pipeline.trigger import TRAINING_PREFIX

RECIPES_PREFIX = "recipes"
_TEXT_SAMPLE_BYTES = 4096


class RecipeRequiredError(ValueError):
    """Non-tabular data without a recipe in pipeline.json; the message says what to add."""


def list_keys(s3: Any, bucket: str, prefix: str) -> list[tuple[str, int]]:
    """(key, size) of every object under prefix, all pages."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [(obj["Key"], obj["Size"]) for obj in page.get("Contents", [])]
    return found


def _read_version(s3: Any, bucket: str, entry: Entry, byte_range: str | None = None) -> bytes:
    request: dict[str, Any] = {"Bucket": bucket, "Key": entry.key, "IfMatch": entry.etag}
    if entry.version_id:
        request["VersionId"] = entry.version_id
    if byte_range:
        request["Range"] = byte_range
    return bytes(s3.get_object(**request)["Body"].read())


def load_config(
    s3: Any, bucket: str, dataset: str, defaults: dict[str, Any], entries: list[Entry]
) -> tuple[RunConfig, bool]:
    """Template defaults overridden by the manifest's version of training/<dataset>/pipeline.json, if any."""
    config_files = [e for e in entries if e.split == snapshot.CONFIG]
    if not config_files:
        return resolve(defaults, {}), False
    key = f"{TRAINING_PREFIX}{dataset}/{CONFIG_FILE}"
    body = _read_version(s3, bucket, config_files[0])
    return resolve(defaults, parse_overrides(body, f"s3://{bucket}/{key}")), True


def _text_sample(s3: Any, bucket: str, data: list[Entry]) -> str | None:
    text = [e for e in data if e.key.lower().endswith((".txt", ".text"))]
    if not text:
        return None
    body = _read_version(s3, bucket, text[0], f"bytes=0-{_TEXT_SAMPLE_BYTES - 1}")
    sample: str = body.decode("utf-8", errors="replace")
    return sample


def detect(s3: Any, bucket: str, data: list[Entry], config: RunConfig) -> DetectedFormat:
    """The data format pipeline.json names, or the one the manifest's files (and a text sample) show."""
    if config["data_format"] != "auto":
        fmt = config["data_format"]
        return DetectedFormat(fmt, detect_format([f"x.{fmt}"]).content_type, tabular=True)
    return detect_format([e.key for e in data], _text_sample(s3, bucket, data))


def custom_recipe_files(s3: Any, bucket: str, dataset: str, entry_point: str) -> dict[str, bytes]:
    prefix = f"{RECIPES_PREFIX}/{dataset}/"
    files = {
        key[len(prefix) :]: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key, size in list_keys(s3, bucket, prefix)
        if size > 0 and not key.endswith("/")
    }
    if entry_point not in files:
        raise RecipeRequiredError(
            f"pipeline.json names recipe.entry_point {entry_point!r}, but "
            f"s3://{bucket}/{prefix}{entry_point} does not exist; upload your recipe's code under s3://{bucket}/{prefix}"
        )
    return files
