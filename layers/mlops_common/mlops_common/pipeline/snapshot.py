"""A run's input, frozen when the run starts.

- ``list_dataset``: one listing of the dataset's folders (``ListObjectVersions``: key, VersionId, ETag, size
  of every object's latest version).
- ``identity``: the run's content identity, a hash of keys, ETags and sizes plus the template defaults (the
  ``pipeline.json`` is one of the listed objects), so identical data uploaded again names the same run.
- ``write_manifest`` / ``read_manifest``: ``runs/<dataset>/<run id>/manifest.json`` in the output bucket.
- ``copy_snapshot``: server-side copies of exactly those versions into ``runs/<dataset>/<run id>/input/``; the
  jobs read only there, so an overwrite or a deletion in the input bucket after the start changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mlops_common.pipeline import naming
from mlops_common.pipeline.data_formats import CONFIG_FILE, READY_MARKERS
from mlops_common.pipeline.trigger import SPLITS, dataset_prefixes

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
CONFIG = "config"  # the split name of training/<dataset>/pipeline.json in a manifest
SNAPSHOT_DIR = "input"
# CopyObject copies at most 5 GiB; larger objects go through the managed (multipart) copy.
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html
COPY_OBJECT_MAX = 5 * 1024**3
COPY_WORKERS = 16
# Fields of the template defaults that decide when a run starts, not what it trains: not part of the identity.
TRIGGER_ONLY_FIELDS = ("dataset_quiet_seconds",)


class ManifestError(ValueError):
    """A manifest is missing or is not what start_run writes; the message says which and why."""


@dataclass(frozen=True)
class Entry:
    split: str  # training | validation | test | config
    key: str
    version_id: str | None  # None: the bucket is not versioned (the copy is then checked by ETag)
    etag: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "key": self.key,
            "versionId": self.version_id,
            "etag": self.etag,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Entry:
        return cls(item["split"], item["key"], item.get("versionId"), item["etag"], int(item["size"]))

    def relative(self, dataset: str) -> str:
        """The key below its dataset folder ('part-1/a.csv')."""
        folder = "training" if self.split == CONFIG else self.split
        return self.key[len(f"{folder}/{dataset}/") :]


def run_path(dataset: str, run_id: str) -> str:
    """The run's folder in the output bucket (and the models bucket): runs/<dataset slug>/<run id>."""
    return f"runs/{naming.slug(dataset, naming.SAGEMAKER_NAME_MAX)}/{run_id}"


def manifest_key(dataset: str, run_id: str) -> str:
    return f"{run_path(dataset, run_id)}/{MANIFEST_FILE}"


def _entry(split: str, dataset: str, version: dict[str, Any]) -> Entry | None:
    key = version["Key"]
    relative = key[len(f"{split}/{dataset}/") :]
    if key.endswith("/") or not relative:
        return None  # folder markers
    if split == "training" and relative in READY_MARKERS:
        return None  # markers say when, not what
    if split == "training" and relative == CONFIG_FILE:
        split = CONFIG
    elif version.get("Size", 0) == 0:
        return None
    version_id = version.get("VersionId")
    return Entry(
        split=split,
        key=key,
        version_id=None if version_id in (None, "null") else version_id,
        etag=version["ETag"],
        size=int(version.get("Size", 0)),
    )


def latest_versions(s3: Any, bucket: str, dataset: str) -> list[tuple[str, dict[str, Any]]]:
    """(split, ListObjectVersions entry) of the latest version of every object in the dataset's folders,
    markers included (a delete marker hides its key)."""
    found = []
    for split, prefix in zip(SPLITS, dataset_prefixes(dataset), strict=True):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            found += [(split, version) for version in page.get("Versions", []) if version.get("IsLatest")]
    return found


def dataset_entries(dataset: str, versions: list[tuple[str, dict[str, Any]]]) -> list[Entry]:
    """What a run reads from a listing: data, splits and pipeline.json, in manifest order."""
    entries = [entry for split, version in versions if (entry := _entry(split, dataset, version)) is not None]
    return sorted(entries, key=lambda e: (SPLITS.index(e.split) if e.split in SPLITS else -1, e.key))


def list_dataset(s3: Any, bucket: str, dataset: str) -> list[Entry]:
    """The latest version of every object a run reads in the dataset's folders."""
    return dataset_entries(dataset, latest_versions(s3, bucket, dataset))


def newest_upload_ms(versions: list[tuple[str, dict[str, Any]]]) -> int | None:
    """When the newest object of a listing was written (epoch ms, from the end of S3's whole second), markers
    and pipeline.json included; None for an empty dataset. The bucket is the truth about uploads: their events
    may still be queued behind a backlog."""
    written = [int(version["LastModified"].timestamp()) * 1000 + 999 for _, version in versions]
    return max(written, default=None)


def defaults_identity(defaults_text: str | None) -> dict[str, Any]:
    """The template defaults that shape a run (PIPELINE_DEFAULTS), trigger-only fields left out."""
    try:
        defaults = json.loads(defaults_text) if defaults_text else {}
    except json.JSONDecodeError:
        return {"unparsed": defaults_text}  # PrepareRun reports it; the identity still changes with the text
    if not isinstance(defaults, dict):
        return {"unparsed": defaults_text}
    return {k: v for k, v in sorted(defaults.items()) if k not in TRIGGER_ONLY_FIELDS}


def identity(entries: list[Entry], defaults: dict[str, Any], force_token: str | None = None) -> str:
    """sha256 of what the run trains on: each object's split, key, ETag and size (not its VersionId: the same
    bytes uploaded again are the same data), the template defaults, and a forced run's marker version."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: (e.split, e.key)):
        digest.update(f"{entry.split}\0{entry.key}\0{entry.etag}\0{entry.size}\n".encode())
    digest.update(json.dumps(defaults, sort_keys=True).encode())
    if force_token:
        digest.update(f"\nforce\0{force_token}".encode())
    return digest.hexdigest()


def build_manifest(
    *,
    run_id: str,
    dataset: str,
    bucket: str,
    entries: list[Entry],
    content_identity: str,
    defaults: dict[str, Any],
    trigger: str,
    force: bool,
) -> dict[str, Any]:
    return {
        "manifestVersion": MANIFEST_VERSION,
        "runId": run_id,
        "dataset": dataset,
        "bucket": bucket,
        "trigger": trigger,
        "force": force,
        "identity": content_identity,
        "configDefaults": defaults,
        "files": [entry.as_json() for entry in entries],
    }


def write_manifest(s3: Any, output_bucket: str, manifest: dict[str, Any]) -> str:
    key = manifest_key(manifest["dataset"], manifest["runId"])
    s3.put_object(
        Bucket=output_bucket,
        Key=key,
        Body=json.dumps(manifest, indent=1, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return f"s3://{output_bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ManifestError(f"expected an s3://<bucket>/<key> manifest URI, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def read_manifest(s3: Any, uri: str) -> tuple[dict[str, Any], list[Entry]]:
    """The manifest start_run wrote, and its entries."""
    bucket, key = parse_s3_uri(uri)
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        entries = [Entry.from_json(item) for item in manifest["files"]]
        manifest["dataset"], manifest["bucket"]
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{uri} is not a run manifest written by start_run: {error!r}") from None
    return manifest, entries


def snapshot_prefix(dataset: str, run_id: str, split: str) -> str:
    return f"{run_path(dataset, run_id)}/{SNAPSHOT_DIR}/{split}/"


def _copy(s3: Any, source_bucket: str, entry: Entry, target_bucket: str, target_key: str) -> None:
    source = {"Bucket": source_bucket, "Key": entry.key}
    if entry.version_id:
        source["VersionId"] = entry.version_id
    if entry.size <= COPY_OBJECT_MAX:
        # IfMatch: without versioning the ETag is what proves these are the listed bytes.
        s3.copy_object(Bucket=target_bucket, Key=target_key, CopySource=source, CopySourceIfMatch=entry.etag)
    else:
        s3.copy(source, target_bucket, target_key, ExtraArgs={"CopySourceIfMatch": entry.etag})


def copy_snapshot(
    s3: Any, manifest: dict[str, Any], entries: list[Entry], output_bucket: str
) -> dict[str, str]:
    """Copy every data object's listed version into the run's folder (in parallel, server side); return the
    s3:// prefix of each split that has files. Idempotent: a retried PrepareRun copies the same versions."""
    dataset, run_id = manifest["dataset"], manifest["runId"]
    data = [e for e in entries if e.split in SPLITS]
    jobs = [(e, f"{snapshot_prefix(dataset, run_id, e.split)}{e.relative(dataset)}") for e in data]
    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        # list(): re-raise the first failed copy here.
        list(pool.map(lambda job: _copy(s3, manifest["bucket"], job[0], output_bucket, job[1]), jobs))
    return {
        split: f"s3://{output_bucket}/{snapshot_prefix(dataset, run_id, split)}"
        for split in SPLITS
        if any(e.split == split for e in data)
    }
