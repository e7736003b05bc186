"""Which objects under inference/ start a batch, and the batch's identity.

Convention (docs/batch.md):
- ``inference/<dataset>/<file>.csv`` directly in the dataset folder is a one-file batch, started when it
  lands.
- ``inference/<dataset>/<folder>/...`` files wait; ``inference/<dataset>/<folder>/_READY`` (or
  ``manifest.json``) starts one batch of every file in that folder.
- Folder markers, zero-byte objects and other extensions directly in the dataset folder start nothing; the
  reason is logged. Nothing under inference/ is ever modified: the batch reads a copy (prepare.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from mlops_common.pipeline import naming
from mlops_common.pipeline.data_formats import READY_MARKERS
from mlops_common.pipeline.trigger import ObjectEvent

INFERENCE_PREFIX = "inference/"
BATCH_EXTENSIONS = (".csv",)
SINGLE_FILE = "single-file"
FOLDER = "folder"
# The batch id is a path segment of predictions/<dataset>/<batch>/: the file or folder name plus a hash of
# the object version, so a new version of the same file is a new batch.
BATCH_NAME_MAX = 40


@dataclass(frozen=True)
class BatchDecision:
    start: bool
    reason: str
    dataset: str | None = None
    trigger: str | None = None  # single-file | folder
    input_prefix: str | None = None  # the key (single-file) or the folder prefix ending in '/'


def classify(key: str, size: int | None) -> BatchDecision:  # noqa: PLR0911 - one return per rule reads best
    if not key.startswith(INFERENCE_PREFIX):
        return BatchDecision(False, f"outside {INFERENCE_PREFIX}")
    if key.endswith("/"):
        return BatchDecision(False, "folder marker (key ends with '/')")
    parts = key[len(INFERENCE_PREFIX) :].split("/")
    if len(parts) < 2 or not parts[0]:
        return BatchDecision(
            False, "file directly under inference/: put it in inference/<dataset>/<file>.csv"
        )
    dataset, name = parts[0], parts[-1]
    if len(parts) == 3 and name in READY_MARKERS:
        folder = key.rsplit("/", 1)[0] + "/"
        return BatchDecision(
            True, f"completion marker {name}: every file of the folder", dataset, FOLDER, folder
        )
    if len(parts) > 2:
        return BatchDecision(
            False,
            f"part of a folder batch: upload {key.rsplit('/', 1)[0]}/_READY when all files are there",
            dataset,
        )
    if size == 0:
        return BatchDecision(False, "zero-byte object", dataset)
    if PurePosixPath(name).suffix.lower() not in BATCH_EXTENSIONS:
        return BatchDecision(
            False, f"{name!r}: batch predictions read {', '.join(BATCH_EXTENSIONS)} files", dataset
        )
    return BatchDecision(True, "one-file batch", dataset, SINGLE_FILE, key)


def version_token(event: ObjectEvent) -> str:
    """What tells two versions of one key apart: the version id; without versioning, the sequencer and ETag
    (both repeated verbatim in a redelivered event; the ETag changes with the content)."""
    return event.version_id or f"{event.sequencer or ''}/{event.etag or ''}"


def _digest(event: ObjectEvent) -> str:
    return hashlib.sha256(f"{event.bucket}\n{event.key}\n{version_token(event)}".encode()).hexdigest()


def batch_id(event: ObjectEvent, decision: BatchDecision) -> str:
    """'<file or folder name>-<hash of the triggering object version>' (a-z0-9-, at most 40 characters)."""
    assert decision.input_prefix is not None
    label = PurePosixPath(decision.input_prefix.rstrip("/")).name
    label = PurePosixPath(label).stem if decision.trigger == SINGLE_FILE else label
    # max: 31 (slug) + 1 + 8 (hash) = 40
    hash_len = naming.RUN_HASH_LEN
    return f"{naming.slug(label, BATCH_NAME_MAX - hash_len - 1)}-{_digest(event)[:hash_len]}"


def execution_name(event: ObjectEvent, dataset: str) -> str:
    """Deterministic per object version: a redelivered event finds its execution (at most 80 characters)."""
    # max: 63 (slug) + 1 + 16 (hash) = 80
    return f"{naming.slug(dataset, naming.EXECUTION_NAME_MAX - 17)}-{_digest(event)[:16]}"
