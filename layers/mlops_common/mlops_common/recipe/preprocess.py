"""Processing job: read a dataset, validate its rows and split it; the splits keep the raw values.

SageMaker paths (each overridable by an argument; when this script sits in ``<root>/input/code/`` the defaults
resolve under ``<root>`` instead of /opt/ml/processing, which is how the offline job runner maps them):

    in : /opt/ml/processing/input/data/        the dataset's files, recursively (CSV, Parquet, JSONL, LibSVM,
                                               or class folders of images / .txt documents)
         /opt/ml/processing/input/validation/  optional user-provided validation split (absent: split data)
         /opt/ml/processing/input/test/        optional user-provided test split (absent: split data)
    out: /opt/ml/processing/output/{train,validation,test}/<split>.csv  header row, raw cell values, target
                                                                        included; image splits also hold
                                                                        images/<class>/<file>
         /opt/ml/processing/output/schema/schema.json                   see recipe_common's docstring

Nothing is encoded here: train.py fits one scikit-learn pipeline (recipe_pipeline.py) on the raw training
split.

Rules worth knowing (also in README.md):
- CSV header detection: the first row is a header when it contains the target column's name, or when it holds
  text in a column whose other values are numbers (and no number itself). Without a header the columns have no
  names, so ``--target-column`` must be the 0-based column index (``--target-column 0`` for the first column).
- LibSVM: the label is always the first token; ``--target-column`` is ignored.
- Class folders (``<class>/<file>``): images (JPEG, PNG, ...) or ``.txt`` documents; the folder is the label.
- A row is invalid when it cannot be parsed, lacks the target, holds text in a numeric column, or is an image
  Pillow cannot decode. Invalid rows are dropped and counted while they are at most
  ``--max-invalid-row-fraction`` of all rows; beyond that the job fails and names the first offending rows.
- Feature kinds: numeric when (almost) every value is a number; text when named in ``--text-columns`` or when
  values read like prose (at least 3 words on average, or 2 with mostly distinct values); else categorical.
- ``--problem-type auto``: a non-numeric target is classification; an integer target with 2-20 distinct
  values and at least 5 rows per value on average is classification too; anything else is regression. Two
  classes make ``binary_classification``, more make ``multiclass_classification``.
- Splits: scikit-learn's ``train_test_split``, stratified by class when every class has 2 rows or more.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recipe_common as rc

# Objects the pipeline keeps next to the data that are not data.
NON_DATA_NAMES = frozenset({"pipeline.json", "manifest.json"})
FORMATS = ("csv", "parquet", "jsonl", "libsvm", "image", "text")
# Datasets of files in class folders (``<class>/<file>``): the folder name is the label.
FOLDER_FORMATS = ("image", "text")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
TEXT_EXTENSIONS = frozenset({".txt", ".text"})
FOLDER_FEATURE = {"image": "image", "text": "text"}
FOLDER_TARGET = "label"
# Free-text detection: average words per value, and the share of distinct values for shorter texts.
TEXT_MIN_WORDS = 3.0
TEXT_MIN_WORDS_DISTINCT = 2.0
TEXT_MIN_DISTINCT_SHARE = 0.5
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".libsvm": "libsvm",
    ".svm": "libsvm",
}
# Problem-type inference: an integer target with at most this many distinct values ...
MAX_AUTO_CLASSES = 20
# ... and at least this many rows per distinct value on average is a classification target.
MIN_ROWS_PER_AUTO_CLASS = 5
MIN_ROWS_TO_SPLIT = 10
HEADER_SAMPLE_ROWS = 50
INVALID_EXAMPLES_SHOWN = 5
SPLITS = ("train", "validation", "test")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    root = rc.default_processing_root()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-column", default="label", help="column name, or 0-based index")
    parser.add_argument("--problem-type", default="auto", choices=("auto", *rc.PROBLEM_TYPES))
    parser.add_argument("--data-format", default="auto", choices=("auto", *FORMATS))
    parser.add_argument("--max-invalid-row-fraction", type=float, default=0.05)
    parser.add_argument(
        "--text-columns", default="[]", help='JSON list of columns to treat as free text, e.g. ["review"]'
    )
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--input-dir", type=Path, default=root / "input" / "data")
    parser.add_argument("--validation-input-dir", type=Path, default=root / "input" / "validation")
    parser.add_argument("--test-input-dir", type=Path, default=root / "input" / "test")
    parser.add_argument("--output-dir", type=Path, default=root / "output")
    for split in (*SPLITS, "schema"):
        parser.add_argument(
            f"--{split}-output-dir", type=Path, default=None, help=f"default <output-dir>/{split}"
        )
    args = parser.parse_args(argv)
    validate_fractions(args)
    try:
        args.text_columns = [str(name) for name in json.loads(args.text_columns)]
    except (ValueError, TypeError) as exc:
        raise rc.DatasetError(
            f'text_columns must be a JSON list of column names like ["review"], got {args.text_columns!r}'
        ) from exc
    return args


def validate_fractions(args: argparse.Namespace) -> None:
    if not 0 <= args.max_invalid_row_fraction < 1:
        raise rc.DatasetError("max_invalid_row_fraction must be in [0, 1): fix it in pipeline.json")
    train, validation = args.train_fraction, args.validation_fraction
    if not (0 < train < 1 and 0 < validation < 1 and train + validation < 1):
        raise rc.DatasetError(
            f"train_fraction={train} and validation_fraction={validation} must each be in (0, 1) and sum to "
            "less than 1 (the rest is the test split): fix them in pipeline.json"
        )


# ---------------------------------------------------------------- reading files


@dataclass
class FileTable:
    """One file's rows as canonical text cells (None = missing); ``columns`` is None without a header."""

    path: Path
    columns: list[str] | None
    rows: list[list[str | None]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    # Columns absent from a row mean "missing" (JSON Lines) rather than a malformed row.
    sparse_fill: str | None = None

    @property
    def seen(self) -> int:
        return len(self.rows) + len(self.invalid)


def discover_files(directory: Path) -> list[Path]:
    """Data files below ``directory``; skips hidden and _marker files (_READY), pipeline.json, empty files."""
    files = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name in NON_DATA_NAMES or path.name[:1] in "._":
            continue
        if path.stat().st_size == 0:
            continue
        files.append(path)
    return files


def open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def detect_format(path: Path) -> str:
    """The file's format from its extension (``.gz`` ignored), else from its first bytes."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in EXTENSION_FORMATS:
        return EXTENSION_FORMATS[suffixes[-1]]
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PAR1":
        return "parquet"
    with open_text(path) as handle:
        first = next((line.strip() for line in handle if line.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    if looks_like_libsvm(first):
        return "libsvm"
    if "," in first or "\t" in first:
        return "csv"
    raise rc.DatasetError(
        f"{path}: cannot tell the format from the name or content; use .csv, .parquet, .jsonl or .libsvm, "
        'or set "data_format" in pipeline.json'
    )


def looks_like_libsvm(line: str) -> bool:
    tokens = line.split("#", 1)[0].split()
    if len(tokens) < 2 or rc.to_number(tokens[0]) is None:
        return False
    return all(_parse_libsvm_pair(token) is not None for token in tokens[1:] if not token.startswith("qid:"))


def _parse_libsvm_pair(token: str) -> tuple[int, float] | None:
    index, sep, value = token.partition(":")
    number = rc.to_number(value)
    if not sep or not index.isdigit() or number is None:
        return None
    return int(index), number


def read_file(path: Path, data_format: str, target_spec: str) -> FileTable:
    readers = {"csv": read_csv, "parquet": read_parquet, "jsonl": read_jsonl, "libsvm": read_libsvm}
    try:
        return readers[data_format](path, target_spec)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise rc.DatasetError(
            f"{path}: cannot be read as {data_format} ({exc}); check the file and its format"
        ) from exc


def csv_delimiter(path: Path) -> str:
    """Tab for .tsv; otherwise comma, unless the first line has no comma but a semicolon, tab or pipe."""
    if ".tsv" in [s.lower() for s in path.suffixes]:
        return "\t"
    with open_text(path) as handle:
        first = handle.readline()
    if "," in first:
        return ","
    counts = {delimiter: first.count(delimiter) for delimiter in ";\t|"}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def read_csv(path: Path, target_spec: str) -> FileTable:
    delimiter = csv_delimiter(path)
    with open_text(path) as handle:
        numbered = [(n, row) for n, row in enumerate(csv.reader(handle, delimiter=delimiter), start=1) if row]
    numbered = [(n, row) for n, row in numbered if any(cell.strip() for cell in row)]
    if not numbered:
        return FileTable(path, None)
    first = [cell.strip() for cell in numbered[0][1]]
    has_header = looks_like_header(
        first, [row for _, row in numbered[1 : 1 + HEADER_SAMPLE_ROWS]], target_spec
    )
    if has_header:
        if len(set(first)) != len(first):
            duplicates = sorted(name for name, count in Counter(first).items() if count > 1)
            raise rc.DatasetError(f"{path}: the header repeats column names {duplicates}; make them unique")
        numbered = numbered[1:]
        width = len(first)
    else:
        width = Counter(len(row) for _, row in numbered[:1000]).most_common(1)[0][0]
    table = FileTable(path, first if has_header else None)
    for line, row in numbered:
        if len(row) != width:
            table.invalid.append(f"{path.name}:{line}: {len(row)} fields, expected {width}")
            continue
        table.rows.append([rc.to_text(cell) for cell in row])
        table.origins.append(f"{path.name}:{line}")
    return table


def looks_like_header(first: list[str], sample: list[list[str]], target_spec: str) -> bool:
    """A header names the target, or holds text above a column of numbers (and holds no number itself)."""
    if not target_spec.isdigit() and target_spec in first:
        return True
    if any(rc.to_number(cell) is not None for cell in first):
        return False
    for index, cell in enumerate(first):
        if rc.is_missing(cell):
            continue
        below = [row[index] for row in sample if index < len(row) and not rc.is_missing(row[index])]
        if below and all(rc.to_number(value) is not None for value in below):
            return True
    return False


def read_jsonl(path: Path, target_spec: str) -> FileTable:
    del target_spec  # records carry their own names
    with open_text(path) as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise rc.DatasetError(f"{path}: not valid JSON ({exc}); use one JSON object per line") from exc
        numbered = [(n, record) for n, record in enumerate(records, start=1)]
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((n, json.loads(line)))
            except json.JSONDecodeError:
                numbered.append((n, None))
    table = FileTable(path, [], sparse_fill=None)
    columns: dict[str, int] = {}
    records_ok: list[tuple[int, dict[str, Any]]] = []
    for n, record in numbered:
        reason = _record_problem(record)
        if reason:
            table.invalid.append(f"{path.name}:{n}: {reason}")
            continue
        for key in record:
            columns.setdefault(str(key), len(columns))
        records_ok.append((n, record))
    table.columns = list(columns)
    for n, record in records_ok:
        table.rows.append([rc.to_text(record.get(name)) for name in table.columns])
        table.origins.append(f"{path.name}:{n}")
    return table


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    nested = [key for key, value in record.items() if isinstance(value, (dict, list))]
    return f"nested value in {nested[0]!r}: flatten it into scalar fields" if nested else None


def read_parquet(path: Path, target_spec: str) -> FileTable:
    del target_spec
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a broken file
        raise rc.DatasetError(f"{path}: not a readable Parquet file ({exc})") from exc
    table = FileTable(path, [str(c) for c in frame.columns])
    for n, row in enumerate(frame.itertuples(index=False, name=None), start=1):
        table.rows.append([rc.to_text(value) for value in row])
        table.origins.append(f"{path.name}:row {n}")
    return table


def read_libsvm(path: Path, target_spec: str) -> FileTable:
    """``<label> <index>:<value> ...`` via scikit-learn's ``load_svmlight_file``; absent indices are zeros.

    Lines are checked one by one first, so a malformed line is an invalid row (named by file:line) instead of
    failing the whole file; the valid lines are then parsed by scikit-learn, indices kept as written.
    """
    from sklearn.datasets import load_svmlight_file  # noqa: PLC0415 - only LibSVM datasets need it

    del target_spec
    table = FileTable(path, ["label"], sparse_fill="0")
    valid: list[bytes] = []
    with open_text(path) as handle:
        for n, raw in enumerate(handle, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            tokens = line.split()
            pairs = [_parse_libsvm_pair(t) for t in tokens[1:] if not t.startswith("qid:")]
            if rc.to_number(tokens[0]) is None or any(pair is None for pair in pairs):
                table.invalid.append(f"{path.name}:{n}: not '<label> <index>:<value> ...'")
                continue
            valid.append(line.encode("utf-8"))
            table.origins.append(f"{path.name}:{n}")
    if not valid:
        return table
    try:
        matrix, labels = load_svmlight_file(io.BytesIO(b"\n".join(valid) + b"\n"), zero_based=True)
    except ValueError as exc:
        raise rc.DatasetError(f"{path}: not LibSVM ({exc}); use '<label> <index>:<value> ...' lines") from exc
    matrix = matrix.tocsc()
    used = [index for index in range(matrix.shape[1]) if matrix.indptr[index + 1] > matrix.indptr[index]]
    table.columns = ["label", *(f"feature_{index}" for index in used)]
    dense = matrix[:, used].toarray() if used else np.zeros((len(valid), 0))
    for label, values in zip(labels, dense):  # noqa: B905 - the container runs Python 3.9
        table.rows.append([rc.format_number(float(label)), *(rc.format_number(float(v)) for v in values)])
    return table


# ---------------------------------------------------------------- combining files


@dataclass
class Dataset:
    """All files of one input directory, aligned on one set of columns."""

    columns: list[str]
    named: bool
    rows: list[list[str | None]]
    origins: list[str]
    invalid: list[str]
    files: list[Path]
    data_format: str

    @property
    def seen(self) -> int:
        return len(self.rows) + len(self.invalid)


def load_dataset(directory: Path, data_format: str, target_spec: str) -> Dataset:
    files = discover_files(directory)
    if not files:
        raise rc.DatasetError(
            f"no data files in {directory} (empty files, _markers and pipeline.json are skipped): upload the "
            "dataset's files under training/<dataset>/"
        )
    folder_format = data_format if data_format in FOLDER_FORMATS else None
    if data_format == "auto":
        folder_format = detect_folder_format(directory, files)
    if folder_format:
        return read_class_folders(directory, files, folder_format)
    formats = {path: detect_format(path) if data_format == "auto" else data_format for path in files}
    if len(set(formats.values())) > 1:
        listing = ", ".join(f"{p.name}={f}" for p, f in formats.items())
        raise rc.DatasetError(f"the dataset mixes formats ({listing}); use one format per dataset")
    fmt = next(iter(formats.values()))
    tables = [read_file(path, fmt, target_spec) for path in files]
    return combine_tables(tables, fmt)


def _extension(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return suffixes[-1] if suffixes else ""


def detect_folder_format(directory: Path, files: list[Path]) -> str | None:
    """ "image" when every file is an image; "text" when every file is a .txt document in a sub-folder (and
    the first one is not LibSVM); None for tabular files."""
    extensions = {_extension(path) for path in files}
    if extensions <= IMAGE_EXTENSIONS:
        return "image"
    nested = all(path.parent != directory for path in files)
    if extensions <= TEXT_EXTENSIONS and nested:
        with open_text(files[0]) as handle:
            first = next((line.strip() for line in handle if line.strip()), "")
        return "libsvm" if looks_like_libsvm(first) else "text"
    return None


def read_class_folders(directory: Path, files: list[Path], kind: str) -> Dataset:
    """One row per file: (content, class) where the class is the file's folder below ``directory``.

    Images keep their path relative to ``directory`` (the split writer copies them); a file Pillow cannot
    decode is an invalid row. Text files are read as UTF-8 (an undecodable one is an invalid row).
    """
    if kind == "libsvm":
        return combine_tables([read_file(path, "libsvm", "0") for path in files], "libsvm")
    loose = [path for path in files if path.parent == directory]
    if loose:
        raise rc.DatasetError(
            f"{loose[0].name} is not in a class folder: put each class's files in its own folder, e.g. "
            f"training/<dataset>/<class>/{loose[0].name} (the folder name is the label)"
        )
    allowed = IMAGE_EXTENSIONS if kind == "image" else TEXT_EXTENSIONS
    feature = FOLDER_FEATURE[kind]
    dataset = Dataset([feature, FOLDER_TARGET], True, [], [], [], files, kind)
    if kind == "image":
        rc.ensure_requirements("PIL")
    for path in files:
        relative = path.relative_to(directory).as_posix()
        label = path.parent.name
        problem, content = None, ""
        if _extension(path) not in allowed:
            problem = (
                f"{relative}: not a {' / '.join(sorted(allowed))} file; keep one kind of file per dataset"
            )
        elif kind == "image":
            problem = image_problem(path)
            content = str(path)  # the split writer copies the file next to its split
        else:
            try:
                content = path.read_bytes().decode("utf-8-sig").strip()
            except UnicodeDecodeError as exc:
                problem = f"{relative}: not UTF-8 text ({exc})"
            else:
                if not content:
                    problem = f"{relative}: empty document"
        if problem:
            dataset.invalid.append(problem)
            continue
        dataset.rows.append([content, label])
        dataset.origins.append(relative)
    return dataset


def image_problem(path: Path) -> str | None:
    """Why Pillow cannot decode the file, or None."""
    from PIL import Image  # noqa: PLC0415 - installed from requirements.txt when the container lacks it

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a broken file
        return f"{path.name}: not a readable image ({exc})"
    return None


def combine_tables(tables: list[FileTable], data_format: str) -> Dataset:
    """Align every file on the columns of the first named file (positionally for files without a header)."""
    named = [t for t in tables if t.columns is not None and (t.rows or t.columns)]
    if named:
        columns = _union_columns(named) if data_format in ("jsonl", "libsvm") else named[0].columns or []
    else:
        widths = {len(t.rows[0]) for t in tables if t.rows}
        if len(widths) > 1:
            raise rc.DatasetError(f"files without a header have different column counts {sorted(widths)}")
        columns = [f"column_{i}" for i in range(widths.pop())] if widths else []
    dataset = Dataset(columns, bool(named), [], [], [], [t.path for t in tables], data_format)
    for table in tables:
        dataset.invalid.extend(table.invalid)
        dataset.origins.extend(table.origins)
        dataset.rows.extend(_align(table, columns, data_format))
    return dataset


def _union_columns(tables: list[FileTable]) -> list[str]:
    columns: dict[str, None] = {}
    for table in tables:
        columns.update(dict.fromkeys(table.columns or []))
    if "label" in columns and tables[0].sparse_fill is not None:  # LibSVM: label first, features by index
        features = sorted((c for c in columns if c != "label"), key=lambda c: int(c.rsplit("_", 1)[1]))
        return ["label", *features]
    return list(columns)


def _align(table: FileTable, columns: list[str], data_format: str) -> list[list[str | None]]:
    if table.columns is None:
        if table.rows and len(table.rows[0]) != len(columns):
            raise rc.DatasetError(
                f"{table.path}: has no header and {len(table.rows[0])} columns, but the dataset has "
                f"{len(columns)} columns ({', '.join(columns)}); make every file's columns match"
            )
        return table.rows
    if table.columns == columns:
        return table.rows
    missing = [c for c in columns if c not in table.columns]
    extra = [c for c in table.columns if c not in columns]
    if data_format not in ("jsonl", "libsvm") and (missing or extra):
        raise rc.DatasetError(
            f"{table.path}: columns differ from the dataset's other files (missing {missing}, unexpected "
            f"{extra}); every file of a dataset needs the same columns"
        )
    position = {name: i for i, name in enumerate(table.columns)}
    fill = table.sparse_fill
    return [[row[position[c]] if c in position else fill for c in columns] for row in table.rows]


def align_to(reference: Dataset, other: Dataset, label: str) -> Dataset:
    """Put a user-provided split's columns in the training data's order (by name, or by position)."""
    if reference.named and other.named:
        missing = [c for c in reference.columns if c not in other.columns]
        extra = [c for c in other.columns if c not in reference.columns]
        sparse = other.data_format == "libsvm"  # absent indices are zeros; unseen ones carry no learnt weight
        absent_ok = sparse or other.data_format == "jsonl"  # absent keys are missing values
        if (missing and not absent_ok) or (extra and not sparse):
            raise rc.DatasetError(
                f"the {label} split's columns differ from the training data's (missing {missing}, unexpected "
                f"{extra}); use the same columns in {label}/<dataset>/"
            )
        position = {name: i for i, name in enumerate(other.columns)}
        fill = "0" if sparse else None
        other.rows = [
            [row[position[c]] if c in position else fill for c in reference.columns] for row in other.rows
        ]
    elif len(other.columns) != len(reference.columns):
        raise rc.DatasetError(
            f"the {label} split has {len(other.columns)} columns but the training data has "
            f"{len(reference.columns)}; use the same columns in {label}/<dataset>/"
        )
    other.columns = list(reference.columns)
    return other


def resolve_target(dataset: Dataset, spec: str) -> str:
    """The target column's name from a name or a 0-based index; DatasetError says how to fix it."""
    columns = dataset.columns
    where = ", ".join(str(p.name) for p in dataset.files[:3]) + (" ..." if len(dataset.files) > 3 else "")
    if dataset.data_format in ("libsvm", *FOLDER_FORMATS):
        return "label"
    if spec in columns and dataset.named:
        return spec
    if spec.isdigit():
        if int(spec) < len(columns):
            return columns[int(spec)]
        raise rc.DatasetError(
            f"target column index {spec} is out of range: {where} has {len(columns)} columns (0-based "
            f"indexes 0-{len(columns) - 1}); set target_column in training/<dataset>/pipeline.json"
        )
    if not dataset.named:
        raise rc.DatasetError(
            f"target column {spec!r} not found: {where} has no header row, so columns have no names; set "
            "target_column in training/<dataset>/pipeline.json to the target's 0-based column index "
            "(e.g. 0), or add a header row"
        )
    raise rc.DatasetError(
        f"target column {spec!r} not found in {where}; columns found: {', '.join(columns)}. Set "
        "target_column in training/<dataset>/pipeline.json to one of them"
    )


# ---------------------------------------------------------------- validating and typing


@dataclass
class Typed:
    """Valid rows as a DataFrame (text cells), the feature kinds, and the target's interpretation."""

    frame: Any
    feature_kinds: dict[str, str]
    target_numeric: bool
    invalid: list[str]


def type_and_validate(
    frame: Any,
    target: str,
    problem_type: str,
    max_fraction: float,
    *,
    text_columns: list[str] | tuple[str, ...] = (),
    fixed_kinds: dict[str, str] | None = None,
) -> Typed:
    """Decide each feature's kind (numeric, categorical, text; ``fixed_kinds`` for class folders) and drop
    rows that break it (see the module docstring)."""
    unknown = [name for name in text_columns if name not in frame.columns or name == target]
    if unknown:
        features = [c for c in frame.columns if c not in (target, "__origin__", "__split__")]
        raise rc.DatasetError(
            f"text_columns names {unknown}, which are not feature columns of the data (features: "
            f"{', '.join(features)}); fix text_columns in training/<dataset>/pipeline.json"
        )
    bad = pd.Series(False, index=frame.index)
    reasons: list[str] = []
    missing_target = frame[target].isna()
    for origin in frame.loc[missing_target, "__origin__"]:
        reasons.append(f"{origin}: missing target value in {target!r}")
    bad |= missing_target

    if problem_type in rc.CLASSIFICATION_TYPES:
        # Labels are text; they are canonical numbers only when every one of them is a number.
        target_numeric = _mostly_numeric(frame.loc[~bad, target], 0.0)
    else:
        target_numeric = _mostly_numeric(frame.loc[~bad, target], max_fraction)
        if problem_type == rc.REGRESSION and not target_numeric:
            raise rc.DatasetError(
                f"problem_type is regression but target column {target!r} is not numeric; set problem_type "
                "to a classification type or auto in pipeline.json, or check target_column"
            )
    kinds: dict[str, str] = {}
    for column in frame.columns:
        if column in ("__origin__", "__split__"):
            continue
        if column == target:
            is_numeric = target_numeric
        else:
            kinds[column] = feature_kind(frame.loc[~bad, column], max_fraction, text_columns, fixed_kinds)
            is_numeric = kinds[column] == "numeric"
        if is_numeric:
            unparseable = frame[column].notna() & frame[column].map(rc.to_number).isna() & ~bad
            for origin, value in frame.loc[unparseable, ["__origin__", column]].itertuples(index=False):
                reasons.append(f"{origin}: {value!r} in numeric column {column!r} is not a number")
            bad |= unparseable
    return Typed(frame.loc[~bad].copy(), kinds, target_numeric, reasons)


def feature_kind(
    values: Any, max_fraction: float, text_columns: Any, fixed_kinds: dict[str, str] | None
) -> str:
    """numeric | categorical | text (class folders: their fixed kind); see the module docstring."""
    name = values.name
    if fixed_kinds and name in fixed_kinds:
        return fixed_kinds[name]
    if name in text_columns:
        return "text"
    if _mostly_numeric(values, max_fraction):
        return "numeric"
    return "text" if looks_like_text(values) else "categorical"


def looks_like_text(values: Any) -> bool:
    """Prose rather than categories: many words per value, or a few words and mostly distinct values."""
    present = values.dropna()
    if present.empty:
        return False
    words = float(present.map(lambda value: len(str(value).split())).mean())
    distinct_share = present.nunique() / len(present)
    return words >= TEXT_MIN_WORDS or (
        words >= TEXT_MIN_WORDS_DISTINCT and distinct_share > TEXT_MIN_DISTINCT_SHARE
    )


def _mostly_numeric(values: Any, max_fraction: float) -> bool:
    present = values.dropna()
    if present.empty:
        return True
    numeric = int(present.map(rc.to_number).notna().sum())
    return numeric > 0 and numeric >= (1 - max_fraction) * len(present)


def check_invalid_fraction(invalid: list[str], seen: int, max_fraction: float) -> None:
    if seen == 0:
        return
    fraction = len(invalid) / seen
    if fraction > max_fraction:
        examples = "; ".join(invalid[:INVALID_EXAMPLES_SHOWN])
        raise rc.DatasetError(
            f"{len(invalid)} of {seen} rows ({fraction:.1%}) are invalid, more than max_invalid_row_fraction="
            f"{max_fraction}: {examples}. Fix these rows, or raise max_invalid_row_fraction in "
            "training/<dataset>/pipeline.json"
        )


def infer_problem_type(target_values: Any, target_numeric: bool, requested: str, target: str) -> str:
    """Apply the auto rule (module docstring) or check the requested type against the data."""
    distinct = target_values.nunique()
    if requested == rc.REGRESSION:
        return rc.REGRESSION  # type_and_validate already refused a non-numeric target
    if requested == "auto":
        numbers = target_values.map(rc.to_number) if target_numeric else None
        few_integers = (
            numbers is not None
            and bool(numbers.map(float.is_integer).all())
            and distinct <= MAX_AUTO_CLASSES
            and len(target_values) >= MIN_ROWS_PER_AUTO_CLASS * distinct
        )
        if target_numeric and not few_integers:
            return rc.REGRESSION
        requested = rc.BINARY if distinct == 2 else rc.MULTICLASS
    if distinct < 2:
        raise rc.DatasetError(
            f"target column {target!r} has a single value ({target_values.iloc[0]!r}): classification needs "
            "at least two classes; check target_column in pipeline.json"
        )
    if requested == rc.BINARY and distinct != 2:
        raise rc.DatasetError(
            f"problem_type is binary_classification but target column {target!r} has {distinct} classes; set "
            "problem_type to multiclass_classification or auto in pipeline.json"
        )
    return requested


def class_labels_of(target_values: Any, target_numeric: bool) -> list[str]:
    """Sorted class labels: numerically for numeric targets (labels as canonical number text)."""
    if target_numeric:
        numbers = sorted({rc.to_number(v) for v in target_values})
        return [rc.format_number(n) for n in numbers if n is not None]
    return sorted(set(target_values))


# ---------------------------------------------------------------- splitting and writing


def split_rows(
    frame: Any, stratify_by: Any, args: argparse.Namespace, need: tuple[str, ...]
) -> dict[str, Any]:
    """Split ``frame`` into train plus the ``need``-ed splits (validation and/or test) by the fractions."""
    if not need:
        return {"train": frame}
    if len(frame) < MIN_ROWS_TO_SPLIT:
        raise rc.DatasetError(
            f"only {len(frame)} valid rows: at least {MIN_ROWS_TO_SPLIT} are needed to split "
            "train/validation/test; add rows, or provide validation/<dataset>/ and test/<dataset>/ splits"
        )
    fractions = {
        "train": args.train_fraction,
        "validation": args.validation_fraction,
        "test": 1 - args.train_fraction - args.validation_fraction,
    }
    splits: dict[str, Any] = {}
    rest, rest_labels = frame, stratify_by
    remaining = fractions["train"] + sum(fractions[name] for name in need)
    for name in need:
        size = max(1, round(len(frame) * fractions[name] / remaining))
        rest, splits[name], rest_labels = _split_off(rest, rest_labels, size, args.seed)
    splits["train"] = rest
    return splits


def _split_off(frame: Any, labels: Any, size: int, seed: int) -> tuple[Any, Any, Any]:
    """Take ``size`` random rows out of ``frame`` with scikit-learn's ``train_test_split``; stratified by
    ``labels`` when every class has at least 2 rows and the split can hold one row per class, else plain
    random (tiny classes then land wherever chance puts them instead of failing the split)."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415 - keeps --help and arg errors fast

    stratify = None
    if labels is not None:
        counts = labels.value_counts()
        classes = len(counts)
        if counts.min() >= 2 and classes <= size <= len(frame) - classes:
            stratify = labels
    keep, taken = train_test_split(frame, test_size=size, random_state=seed, shuffle=True, stratify=stratify)
    return keep, taken, None if labels is None else labels.loc[keep.index]


def write_split(frame: Any, columns: list[str], directory: Path, name: str, image_column: str | None) -> None:
    """``<directory>/<name>.csv``: a header row, then the raw cells (missing ones empty).

    Image rows point at a copy of their file under ``<directory>/images/`` (the path relative to the split
    folder), so the training channel, the evaluation input and the smoke test find the pixels next to the CSV.
    """
    directory.mkdir(parents=True, exist_ok=True)
    out = frame[columns].copy()
    if image_column is not None:
        copies = []
        for source, origin in zip(frame[image_column], frame["__origin__"]):  # noqa: B905 - Python 3.9
            relative = Path("images") / origin
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copies.append(relative.as_posix())
        out[image_column] = copies
    out.to_csv(directory / f"{name}.csv", index=False, na_rep="")


def to_frame(dataset: Dataset, split: str) -> Any:
    frame = pd.DataFrame(dataset.rows, columns=dataset.columns, dtype=object)
    frame["__origin__"] = [f"{split}/{origin}" if split != "data" else origin for origin in dataset.origins]
    frame["__split__"] = split
    return frame


def load_all(args: argparse.Namespace) -> tuple[Any, str, list[str], int, str]:
    """Read training data and optional user splits: (frame, target, invalid reasons, rows seen, format)."""
    data = load_dataset(args.input_dir, args.data_format, args.target_column)
    if not data.rows:
        check_invalid_fraction(data.invalid, data.seen, args.max_invalid_row_fraction)
        raise rc.DatasetError(
            f"no data rows in {', '.join(p.name for p in data.files)}: the dataset is empty"
        )
    target = resolve_target(data, args.target_column)
    frames = [to_frame(data, "data")]
    invalid, seen = list(data.invalid), data.seen
    for split, directory in (("validation", args.validation_input_dir), ("test", args.test_input_dir)):
        if directory.is_dir() and discover_files(directory):
            provided = align_to(data, load_dataset(directory, data.data_format, args.target_column), split)
            if not provided.rows:
                raise rc.DatasetError(f"the {split} split in {directory} has no data rows")
            frames.append(to_frame(provided, split))
            invalid += [f"{split}/{reason}" for reason in provided.invalid]
            seen += provided.seen
    return pd.concat(frames, ignore_index=True), target, invalid, seen, data.data_format


@dataclass
class Splits:
    frames: dict[str, Any]
    schema: dict[str, Any]


def build_splits(args: argparse.Namespace) -> Splits:
    """The whole preprocessing step in memory: the raw splits (valid rows only) and the schema."""
    frame, target, invalid, seen, data_format = load_all(args)
    fixed_kinds = {FOLDER_FEATURE[data_format]: data_format} if data_format in FOLDER_FORMATS else None
    typed = type_and_validate(
        frame,
        target,
        args.problem_type,
        args.max_invalid_row_fraction,
        text_columns=args.text_columns,
        fixed_kinds=fixed_kinds,
    )
    invalid += typed.invalid
    check_invalid_fraction(invalid, seen, args.max_invalid_row_fraction)
    valid = typed.frame
    if valid[valid["__split__"] == "data"].empty:
        raise rc.DatasetError("every row of the training data is invalid: " + "; ".join(invalid[:5]))
    problem_type = infer_problem_type(valid[target], typed.target_numeric, args.problem_type, target)
    classification = rc.is_classification(problem_type)
    labels = class_labels_of(valid[target], typed.target_numeric) if classification else None
    if classification and typed.target_numeric:
        # One spelling per class ("1", not "1.0"), so labels, predictions and the smoke test agree.
        valid[target] = valid[target].map(lambda v: rc.format_number(rc.to_number(v)))

    provided = set(frame["__split__"]) - {"data"}
    need = tuple(name for name in ("validation", "test") if name not in provided)
    data_rows = valid[valid["__split__"] == "data"]
    stratify = data_rows[target] if classification else None
    splits = split_rows(data_rows, stratify, args, need)
    for name in provided:
        splits[name] = valid[valid["__split__"] == name]
    for name in SPLITS:
        if splits[name].empty:
            raise rc.DatasetError(f"no valid rows left for the {name} split: " + "; ".join(invalid[:5]))

    features = [c for c in frame.columns if c not in (target, "__origin__", "__split__")]
    if not features:
        raise rc.DatasetError(f"the data has only the target column {target!r}: add feature columns")
    schema = {
        "target_column": target,
        "problem_type": problem_type,
        "feature_names": features,
        "feature_kinds": {name: typed.feature_kinds[name] for name in features},
        "class_labels": labels,
        "rows": {name: len(splits[name]) for name in SPLITS},
        "invalid_rows_dropped": len(invalid),
        "data_format": data_format,
    }
    if invalid:
        print(f"dropped {len(invalid)} invalid rows, e.g. " + "; ".join(invalid[:INVALID_EXAMPLES_SHOWN]))
    return Splits(splits, schema)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = build_splits(args)
    schema = result.schema
    columns = [*schema["feature_names"], schema["target_column"]]
    images = [name for name, kind in schema["feature_kinds"].items() if kind == "image"]
    for name in SPLITS:
        directory = getattr(args, f"{name}_output_dir") or args.output_dir / name
        write_split(result.frames[name], columns, directory, name, images[0] if images else None)
    schema_dir = args.schema_output_dir or args.output_dir / "schema"
    schema_dir.mkdir(parents=True, exist_ok=True)
    (schema_dir / rc.SCHEMA_FILE).write_text(json.dumps(schema, indent=2), encoding="utf-8")
    kinds = Counter(schema["feature_kinds"].values())
    print(
        f"problem_type={schema['problem_type']} target={schema['target_column']!r} "
        f"features={len(schema['feature_names'])} kinds={dict(kinds)} rows={schema['rows']} "
        f"invalid_rows_dropped={schema['invalid_rows_dropped']}"
    )


if __name__ == "__main__":
    rc.run_script(main)
