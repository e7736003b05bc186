"""Which S3 object events start a run, and the run's identity.

Convention (docs/pipeline.md):
- ``training/<dataset>/<file>`` with a tabular extension directly under the dataset folder is a single-file
  dataset: it starts a run when it lands.
- Anything deeper (``training/<dataset>/<dir>/...``) or non-tabular is part of a multi-file dataset: it
  starts nothing; ``training/<dataset>/_READY`` or ``training/<dataset>/manifest.json`` starts one run
  for the folder.
- ``pipeline.json`` (the run configuration), folder markers, zero-byte files, unsupported extensions and keys
  outside ``training/`` start nothing; the reason is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from mlops_common.pipeline import naming
from mlops_common.pipeline.data_formats import CONFIG_FILE, READY_MARKERS, format_of, is_tabular_key

TRAINING_PREFIX = "training/"
SINGLE_FILE = "single-file"
MARKER = "marker"


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str
    size: int | None
    etag: str | None
    version_id: str | None
    sequencer: str | None
    event_time: str | None = None


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str
    dataset: str | None = None
    trigger: str | None = None  # single-file | marker


class EventShapeError(ValueError):
    """The event is not an S3 'Object Created' notification."""


def parse_events(event: dict[str, Any]) -> list[ObjectEvent]:
    """EventBridge 'Object Created' events and S3 notification ``Records`` (keys URL-encoded there)."""
    if "Records" in event:
        found = []
        for record in event["Records"]:
            s3 = record.get("s3") or {}
            obj = s3.get("object") or {}
            if "key" not in obj or "name" not in (s3.get("bucket") or {}):
                raise EventShapeError("an S3 notification record without s3.bucket.name / s3.object.key")
            found.append(
                ObjectEvent(
                    bucket=s3["bucket"]["name"],
                    # S3 notifications URL-encode keys, spaces as '+': https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
                    key=unquote_plus(obj["key"]),
                    size=obj.get("size"),
                    etag=obj.get("eTag"),
                    version_id=obj.get("versionId"),
                    sequencer=obj.get("sequencer"),
                    event_time=record.get("eventTime"),
                )
            )
        return found
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    if event.get("source") != "aws.s3" or not bucket or "key" not in obj:
        raise EventShapeError(
            "expected an EventBridge 'Object Created' event from aws.s3 with detail.bucket.name and "
            f"detail.object.key, got source={event.get('source')!r} detail-type={event.get('detail-type')!r}"
        )
    return [
        ObjectEvent(
            bucket=bucket,
            key=obj["key"],
            size=obj.get("size"),
            etag=obj.get("etag") or obj.get("eTag"),
            version_id=obj.get("version-id"),
            sequencer=obj.get("sequencer"),
            event_time=event.get("time"),
        )
    ]


def key_candidates(raw_key: str) -> list[str]:
    """The key as given first, then URL-decoded: EventBridge delivers keys as stored, other paths encoded."""
    decoded = unquote_plus(raw_key)
    return [raw_key] if decoded == raw_key else [raw_key, decoded]


def classify(key: str, size: int | None) -> Decision:  # noqa: PLR0911 - one return per rule reads best
    """Start or ignore, with the reason either way."""
    if not key.startswith(TRAINING_PREFIX):
        return Decision(False, f"outside {TRAINING_PREFIX}: only training/<dataset>/... starts runs")
    rest = key[len(TRAINING_PREFIX) :]
    if key.endswith("/"):
        return Decision(False, "folder marker (key ends with '/')")
    parts = rest.split("/")
    if len(parts) < 2 or not parts[0]:
        return Decision(
            False, "file directly under training/: put it in a dataset folder, training/<dataset>/<file>"
        )
    dataset, name = parts[0], parts[-1]
    direct = len(parts) == 2
    if direct and name in READY_MARKERS:
        return Decision(True, f"completion marker {name}: the whole folder is the dataset", dataset, MARKER)
    if direct and name == CONFIG_FILE:
        return Decision(False, f"{CONFIG_FILE} configures the next run and starts nothing", dataset)
    if size == 0:
        return Decision(False, "zero-byte object", dataset)
    if format_of(key) is None:
        return Decision(False, f"unsupported extension for {name!r}", dataset)
    if not direct:
        return Decision(
            False,
            f"part of a multi-file dataset: upload training/{dataset}/_READY when all files are there",
            dataset,
        )
    if not is_tabular_key(key):
        return Decision(
            False,
            f"non-tabular file: part of a multi-file dataset, upload training/{dataset}/_READY to start",
            dataset,
        )
    return Decision(True, "single-file dataset", dataset, SINGLE_FILE)


def version_token(event: ObjectEvent) -> str:
    """What tells two versions of one key apart: the version id; without versioning, the sequencer and ETag
    (both are repeated verbatim in a redelivered event, and the ETag changes with the content)."""
    return event.version_id or f"{event.sequencer or ''}/{event.etag or ''}"


def execution_name_for(event: ObjectEvent, dataset: str) -> str:
    return naming.execution_name(dataset, event.bucket, event.key, version_token(event))
