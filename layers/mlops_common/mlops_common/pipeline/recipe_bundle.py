"""Upload recipe code to the models bucket by content hash, once per content.

``s3://<models>/code/recipe-<sha256[:12]>/sourcedir.tar.gz`` holds every file at the tar root (training script
mode and serving read it); the same files unpacked under ``.../src/`` feed processing jobs' ``code`` input.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlops_common.aws import S3_MISSING_CODES, error_code

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipe"
CODE_PREFIX = "code"
_SKIPPED_PARTS = ("__pycache__",)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class CodeLocation:
    content_hash: str
    sourcedir_uri: str  # s3://.../sourcedir.tar.gz
    src_uri: str  # s3://.../src/ (trailing slash)
    uploaded: bool  # False when the content was already there


def local_files(directory: Path = RECIPE_DIR) -> dict[str, bytes]:
    """Every file of the recipe folder (no caches), by path relative to it."""
    if not directory.is_dir():
        raise FileNotFoundError(f"recipe folder {directory} is missing from the layer")
    files = {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
        and not any(part in _SKIPPED_PARTS for part in path.parts)
        and path.suffix not in _SKIPPED_SUFFIXES
    }
    if not files:
        raise FileNotFoundError(f"recipe folder {directory} is empty")
    return files


def content_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def tarball(files: dict[str, bytes]) -> bytes:
    """Deterministic tar.gz (fixed mtime/owner), so identical content gives identical bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def ensure_uploaded(s3: Any, bucket: str, files: dict[str, bytes]) -> CodeLocation:
    """Upload unless this content's sourcedir.tar.gz exists (written last, it marks a complete upload)."""
    code_hash = content_hash(files)[:12]
    prefix = f"{CODE_PREFIX}/recipe-{code_hash}"
    tar_key = f"{prefix}/sourcedir.tar.gz"
    location = CodeLocation(
        code_hash, f"s3://{bucket}/{tar_key}", f"s3://{bucket}/{prefix}/src/", uploaded=True
    )
    try:
        s3.head_object(Bucket=bucket, Key=tar_key)
        return CodeLocation(location.content_hash, location.sourcedir_uri, location.src_uri, uploaded=False)
    except ClientError as error:
        if error_code(error) not in S3_MISSING_CODES:
            raise
    for name, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/src/{name}", Body=body)
    s3.put_object(Bucket=bucket, Key=tar_key, Body=tarball(files), ContentType="application/gzip")
    return location
