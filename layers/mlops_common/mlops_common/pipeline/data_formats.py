"""Which files make a dataset, what format they are in, and which content type the recipe gets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

# Formats the default recipe (mlops_common/recipe) trains on.
TABULAR_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".json": "jsonl",  # JSON Lines saved as .json
    ".libsvm": "libsvm",
    ".svm": "libsvm",
}
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "parquet": "application/x-parquet",
    "jsonl": "application/jsonlines",
    "libsvm": "text/libsvm",
    "image": "application/x-image",
    "recordio": "application/x-recordio",
    "text": "text/plain",
    "protobuf": "application/x-recordio-protobuf",
    "tfrecord": "application/x-tfrecord",
}
# Not tabular. Images and .txt documents in class folders train with the default recipe (prepare.py);
# RecordIO, protobuf and TFRecord only with a recipe named in pipeline.json.
OTHER_FORMATS: dict[str, str] = {
    **dict.fromkeys([".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"], "image"),
    **dict.fromkeys([".rec", ".recordio", ".idx", ".lst"], "recordio"),
    **dict.fromkeys([".txt", ".text", ".tsv"], "text"),
    **dict.fromkeys([".pb", ".protobuf", ".proto"], "protobuf"),
    **dict.fromkeys([".tfrecord", ".tfrecords"], "tfrecord"),
}
# Compressed copies of any format above are accepted (".csv.gz").
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".zst")
READY_MARKERS = ("_READY", "manifest.json")
CONFIG_FILE = "pipeline.json"
_LIBSVM_LINE = re.compile(r"^\s*[-+]?\d+(\.\d+)?(\s+\d+:[-+]?[\d.eE+-]+)+\s*$")


@dataclass(frozen=True)
class DetectedFormat:
    data_format: str  # csv | parquet | jsonl | libsvm | image | recordio | text | protobuf | tfrecord
    content_type: str
    tabular: bool


def format_of(key: str) -> str | None:
    """Format name from a key's extension (compression suffix ignored), or None when unsupported."""
    name = PurePosixPath(key).name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    extension = PurePosixPath(name).suffix
    return TABULAR_FORMATS.get(extension) or OTHER_FORMATS.get(extension)


def is_tabular_key(key: str) -> bool:
    return format_of(key) in set(TABULAR_FORMATS.values())


def is_control_file(key: str) -> bool:
    """Markers and the run configuration: never data."""
    return PurePosixPath(key).name in (*READY_MARKERS, CONFIG_FILE)


def looks_like_libsvm(sample: str) -> bool:
    """True when the first non-empty lines of a text file are '<label> <index>:<value> ...'."""
    lines = [line for line in sample.splitlines() if line.strip()][:5]
    return bool(lines) and all(_LIBSVM_LINE.match(line) for line in lines)


class DataFormatError(ValueError):
    """The dataset's files cannot be trained on as they are; the message says what to change."""


def detect_format(keys: list[str], text_sample: str | None = None) -> DetectedFormat:
    """One format for the data files of a dataset (control files already removed).

    Mixed tabular formats are refused; any non-tabular file makes the dataset non-tabular (images and text
    train by default, the rest needs a recipe in pipeline.json). A '.txt' dataset whose sample parses as
    LibSVM is LibSVM.
    """
    if not keys:
        raise DataFormatError("the dataset has no data files")
    formats: dict[str, list[str]] = {}
    for key in keys:
        found = format_of(key)
        if found is None:
            continue
        formats.setdefault(found, []).append(key)
    if not formats:
        raise DataFormatError(
            f"none of the {len(keys)} file(s) has a supported extension (e.g. {keys[0]}); use one of "
            f"{', '.join(sorted({*TABULAR_FORMATS, *OTHER_FORMATS}))}"
        )
    if set(formats) == {"text"} and text_sample is not None and looks_like_libsvm(text_sample):
        return DetectedFormat("libsvm", CONTENT_TYPES["libsvm"], tabular=True)
    tabular = [f for f in formats if f in TABULAR_FORMATS.values()]
    others = [f for f in formats if f not in TABULAR_FORMATS.values()]
    if others:
        main = max(others, key=lambda f: len(formats[f]))
        return DetectedFormat(main, CONTENT_TYPES[main], tabular=False)
    if len(tabular) > 1:
        examples = "; ".join(f"{f}: {formats[f][0]}" for f in sorted(tabular))
        raise DataFormatError(f"the dataset mixes formats ({examples}); keep one format per dataset folder")
    return DetectedFormat(tabular[0], CONTENT_TYPES[tabular[0]], tabular=True)
