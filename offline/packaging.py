"""Upload the built functions, layers and state machine definitions to an artifacts bucket and point the
template at them, as `sam package` does (zips are deterministic and cached by folder content)."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from offline import ACCOUNT_ID, STATE_DIR, DeployError

ZIP_CACHE_DIR = STATE_DIR / "artifacts"

# max: 20 + 12 = 32 characters, a fixed name so reruns against a live server reuse it.
ARTIFACTS_BUCKET = f"mlops-offline-assets-{ACCOUNT_ID}"


def _tree_fingerprint(folder: Path) -> str:
    """Cheap identity of a folder's content (paths, sizes, mtimes): is a cached zip still valid?"""
    digest = hashlib.sha256()
    for path in sorted(_files(folder)):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            yield Path(root) / name


def zip_folder(folder: Path, cache_dir: Path | None = ZIP_CACHE_DIR) -> bytes:
    """A deterministic zip of a folder (files at the root), reused from cache_dir while it is unchanged."""
    cached = cache_dir / f"{_tree_fingerprint(folder)}.zip" if cache_dir else None
    if cached and cached.is_file():
        cached.touch()  # recently used: kept by prune_zip_cache
        return cached.read_bytes()
    buffer = io.BytesIO()
    # Level 1: the layer holds ~37 MB of packages; the upload stays in memory, so speed beats size.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(_files(folder)):
            info = zipfile.ZipInfo(str(path.relative_to(folder)), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=1)
    data = buffer.getvalue()
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(cached)
    return data


def prune_zip_cache(cache_dir: Path | None, max_age_seconds: float = 86_400) -> None:
    """Every `sam build` makes new zips; drop the ones no deploy has used for a day."""
    if not cache_dir or not cache_dir.is_dir():
        return
    cutoff = time.time() - max_age_seconds
    for path in cache_dir.glob("*.zip"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def _upload(s3: Any, bucket: str, data: bytes, suffix: str) -> str:
    key = f"{hashlib.sha256(data).hexdigest()}{suffix}"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return key


def _local_path(build_dir: Path, uri: Any, what: str) -> Path | None:
    """The local file/folder a *Uri property names, or None when it points elsewhere (S3, intrinsic)."""
    if not isinstance(uri, str) or uri.startswith("s3://"):
        return None
    path = (build_dir / uri).resolve()
    if not path.exists():
        raise DeployError(
            f"{what} points at {path}, which does not exist: run `make build` (sam build) again."
        )
    return path


def package(
    template: dict[str, Any],
    build_dir: Path,
    s3: Any,
    bucket: str = ARTIFACTS_BUCKET,
    cache_dir: Path | None = ZIP_CACHE_DIR,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Upload local code/definitions and return (the template pointing at S3, logical id -> local folder)."""
    packaged = copy.deepcopy(template)
    local_dirs: dict[str, Path] = {}
    for logical_id, resource in packaged["Resources"].items():
        kind = resource.get("Type")
        props = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function" and props.get("PackageType", "Zip") == "Zip":
            prop = "CodeUri"
        elif kind == "AWS::Serverless::LayerVersion":
            prop = "ContentUri"
        elif kind == "AWS::Serverless::StateMachine":
            prop = "DefinitionUri"
        else:
            continue
        path = _local_path(build_dir, props.get(prop), f"{logical_id}.{prop}")
        if path is None:
            continue
        if path.is_dir():
            local_dirs[logical_id] = path
            key = _upload(s3, bucket, zip_folder(path, cache_dir), ".zip")
        else:
            key = _upload(s3, bucket, path.read_bytes(), path.suffix)
        props[prop] = f"s3://{bucket}/{key}"
    prune_zip_cache(cache_dir)
    return packaged, local_dirs
