"""Which S3 object events belong to which dataset, and what each one asks for.

A dataset is everything under ``training/<dataset>/`` plus its optional ``validation/<dataset>/`` and
``test/<dataset>/`` splits (docs/pipeline.md):
- ``training/<dataset>/_READY`` or ``training/<dataset>/manifest.json`` (a marker) starts the dataset's run at
  once;
- any other object under those folders is an upload: the run starts once the dataset's folders have been quiet
  for ``DatasetQuietSeconds`` (pipeline/batching.py), whatever the upload's shape (one file, a sync of a
  thousand, sub-folders, image class folders, splits);
- folder markers, zero-byte files, unsupported extensions, files directly under a split folder and keys
  outside these folders are ignored; the reason is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent

from mlops_common.pipeline.data_formats import CONFIG_FILE, READY_MARKERS, format_of

TRAINING_PREFIX = "training/"
# The folders a dataset's files live in, in the order a manifest lists them.
SPLITS = ("training", "validation", "test")
MARKER = "marker"
UPLOAD = "upload"
IGNORE = "ignore"


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
    action: str  # marker | upload | ignore
    reason: str
    dataset: str | None = None
    split: str | None = None


class EventShapeError(ValueError):
    """The event is not an S3 'Object Created' notification."""


def parse_events(event: dict[str, Any]) -> list[ObjectEvent]:
    """EventBridge 'Object Created' events and S3 notification ``Records``, read through Powertools' event
    classes."""
    if "Records" in event:
        found = []
        for record in S3Event(event).records:
            s3, obj = record.get("s3") or {}, (record.get("s3") or {}).get("object") or {}
            if "key" not in obj or "name" not in (s3.get("bucket") or {}):
                raise EventShapeError("an S3 notification record without s3.bucket.name / s3.object.key")
            found.append(
                ObjectEvent(
                    bucket=record.s3.bucket.name,
                    # Notifications URL-encode keys, spaces as '+' (Powertools' record key stays encoded):
                    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
                    key=unquote_plus(record.s3.get_object.key),
                    size=obj.get("size"),
                    etag=obj.get("eTag"),
                    version_id=record.s3.get_object.version_id,
                    sequencer=obj.get("sequencer"),
                    event_time=record.get("eventTime"),
                )
            )
        return found
    detail = event.get("detail") or {}
    if (
        event.get("source") != "aws.s3"
        or not (detail.get("bucket") or {}).get("name")
        or "key" not in (detail.get("object") or {})
    ):
        raise EventShapeError(
            "expected an EventBridge 'Object Created' event from aws.s3 with detail.bucket.name and "
            f"detail.object.key, got source={event.get('source')!r} detail-type={event.get('detail-type')!r}"
        )
    notification = S3EventBridgeNotificationEvent(event)
    obj = notification.detail.object
    return [
        ObjectEvent(
            bucket=notification.detail.bucket.name,
            # EventBridge delivers the key as stored; Powertools' `key` would decode a '+' in it to a space.
            key=obj["key"],
            size=obj.size,
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


def dataset_prefixes(dataset: str) -> list[str]:
    """The folders of one dataset; the trailing '/' keeps 'iris' from matching 'iris2'."""
    return [f"{split}/{dataset}/" for split in SPLITS]


def classify(key: str, size: int | None) -> Decision:  # noqa: PLR0911 - one return per rule reads best
    """Marker, upload or ignore, with the reason either way."""
    split, _, rest = key.partition("/")
    if split not in SPLITS or not rest:
        return Decision(IGNORE, "outside training/, validation/ and test/: only dataset folders start runs")
    if key.endswith("/"):
        return Decision(IGNORE, "folder marker (key ends with '/')")
    parts = rest.split("/")
    if len(parts) < 2 or not parts[0]:
        return Decision(
            IGNORE, f"file directly under {split}/: put it in a dataset folder, {split}/<dataset>/<file>"
        )
    dataset, name = parts[0], parts[-1]
    direct = len(parts) == 2
    if split == "training" and direct and name in READY_MARKERS:
        return Decision(MARKER, f"completion marker {name}: the run starts now", dataset, split)
    if split == "training" and direct and name == CONFIG_FILE:
        return Decision(
            UPLOAD, f"{CONFIG_FILE}: the run configuration is part of the dataset", dataset, split
        )
    if size == 0:
        return Decision(IGNORE, "zero-byte object", dataset, split)
    if format_of(key) is None:
        return Decision(IGNORE, f"unsupported extension for {name!r}", dataset, split)
    return Decision(
        UPLOAD, f"part of dataset {dataset!r}: the run starts when its folders are quiet", dataset, split
    )
