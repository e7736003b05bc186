"""Processing job: read a tabular dataset, validate it, encode it and split it for training.

SageMaker paths (each overridable by an argument; when this script sits in ``<root>/input/code/`` the defaults
resolve under ``<root>`` instead of /opt/ml/processing, which is how the offline job runner maps them):

    in : /opt/ml/processing/input/data/        the dataset's files, recursively (CSV, Parquet, JSONL, LibSVM)
         /opt/ml/processing/input/validation/  optional user-provided validation split (absent: split data)
         /opt/ml/processing/input/test/        optional user-provided test split (absent: split data)
    out: /opt/ml/processing/output/{train,validation,test}/<split>.csv  no header, target first, all numeric
         /opt/ml/processing/output/schema/schema.json                   see recipe_common's docstring

Rules worth knowing (also in README.md):
- CSV header detection: the first row is a header when it contains the target column's name, or when it holds
  text in a column whose other values are numbers (and no number itself). Without a header the columns have no
  names, so ``--target-column`` must be the 0-based column index (``--target-column 0`` for the first column).
- LibSVM: the label is always the first token; ``--target-column`` is ignored.
- A row is invalid when it cannot be parsed, lacks the target, or holds text in a numeric column. Invalid rows
  are dropped and counted while they are at most ``--max-invalid-row-fraction`` of all rows; beyond that the
  job fails and names the first offending rows.
- ``--problem-type auto``: a non-numeric target is classification; an integer target with 2-20 distinct
  values and at least 5 rows per value on average is classification too; anything else is regression. Two
  classes make ``binary_classification``, more make ``multiclass_classification``.
- Feature encoding is learnt from the training split only: numeric columns fill missing values with the
  median; text columns become ordinal codes (sorted categories), unseen or missing values become -1.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
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
FORMATS = ("csv", "parquet", "jsonl", "libsvm")
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
    """``<label> <index>:<value> ...``; absent indices are zeros, as LibSVM defines them."""
    del target_spec
    parsed: list[tuple[int, str, dict[int, float]]] = []
    table = FileTable(path, ["label"], sparse_fill="0")
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
            parsed.append((n, tokens[0], dict(pair for pair in pairs if pair is not None)))
    indices = sorted({index for _, _, features in parsed for index in features})
    table.columns = ["label", *(f"feature_{index}" for index in indices)]
    for n, label, features in parsed:
        table.rows.append([rc.to_text(label), *(rc.format_number(features.get(i, 0.0)) for i in indices)])
        table.origins.append(f"{path.name}:{n}")
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
    formats = {path: detect_format(path) if data_format == "auto" else data_format for path in files}
    if len(set(formats.values())) > 1:
        listing = ", ".join(f"{p.name}={f}" for p, f in formats.items())
        raise rc.DatasetError(f"the dataset mixes formats ({listing}); use one format per dataset")
    fmt = next(iter(formats.values()))
    tables = [read_file(path, fmt, target_spec) for path in files]
    return combine_tables(tables, fmt)


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
    if dataset.data_format == "libsvm":
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


def type_and_validate(frame: Any, target: str, problem_type: str, max_fraction: float) -> Typed:
    """Decide numeric vs categorical per column and drop rows that break it (see the module docstring)."""
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
            is_numeric = _mostly_numeric(frame.loc[~bad, column], max_fraction)
            kinds[column] = "numeric" if is_numeric else "categorical"
        if is_numeric:
            unparseable = frame[column].notna() & frame[column].map(rc.to_number).isna() & ~bad
            for origin, value in frame.loc[unparseable, ["__origin__", column]].itertuples(index=False):
                reasons.append(f"{origin}: {value!r} in numeric column {column!r} is not a number")
            bad |= unparseable
    return Typed(frame.loc[~bad].copy(), kinds, target_numeric, reasons)


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


# ---------------------------------------------------------------- splitting, encoding, writing


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
    """Take ``size`` random rows out of ``frame``; with ``labels``, classes keep their proportions.

    Stratification without scikit-learn (whose import costs seconds): shuffle, then order rows by their
    relative rank within their class, so any prefix holds every class in proportion. Tiny classes just
    land where their rank puts them instead of failing the split.
    """
    rows = frame.index.to_numpy()[np.random.default_rng(seed).permutation(len(frame))]
    if labels is not None:
        shuffled = labels.loc[rows]
        rank = shuffled.groupby(shuffled, sort=False).cumcount().to_numpy()
        class_size = shuffled.map(shuffled.value_counts()).to_numpy()
        rows = rows[np.argsort((rank + 0.5) / class_size, kind="stable")]
    taken, keep = rows[:size], rows[size:]
    return frame.loc[keep], frame.loc[taken], None if labels is None else labels.loc[keep]


def fit_feature_encoders(train: Any, kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Medians for numeric columns, sorted categories for text columns, learnt from the training split."""
    encoders: dict[str, dict[str, Any]] = {}
    for column, kind in kinds.items():
        if kind == "numeric":
            numbers = train[column].map(rc.to_number).dropna()
            median = float(numbers.median()) if len(numbers) else 0.0
            encoders[column] = {"type": "numeric", "fill_value": median}
        else:
            encoders[column] = {"type": "categorical", "categories": sorted(set(train[column].dropna()))}
    return encoders


def encode_split(frame: Any, target: str, features: list[str], schema: dict[str, Any]) -> Any:
    """Numeric matrix of one split: target first (class code or number), then the encoded features."""
    if schema["class_labels"] is not None:
        codes = {label: i for i, label in enumerate(schema["class_labels"])}
        numeric_target = schema["encoders"]["target"].get("numeric_labels", False)
        canon = (lambda v: rc.format_number(rc.to_number(v))) if numeric_target else (lambda v: v)
        y = [codes[canon(v)] for v in frame[target]]
    else:
        y = [rc.to_number(v) for v in frame[target]]
    x = rc.encode_rows(frame[features].itertuples(index=False, name=None), schema)
    matrix = np.empty((len(frame), len(features) + 1), dtype=float)
    matrix[:, 0] = y
    if features:
        matrix[:, 1:] = np.asarray(x, dtype=float).reshape(len(frame), len(features))
    return matrix


def write_matrix(matrix: Any, directory: Path, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.savetxt(directory / f"{name}.csv", matrix, delimiter=",", fmt="%.10g")


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
            provided = align_to(data, load_dataset(directory, args.data_format, args.target_column), split)
            if not provided.rows:
                raise rc.DatasetError(f"the {split} split in {directory} has no data rows")
            frames.append(to_frame(provided, split))
            invalid += [f"{split}/{reason}" for reason in provided.invalid]
            seen += provided.seen
    return pd.concat(frames, ignore_index=True), target, invalid, seen, data.data_format


def build_splits(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole preprocessing step in memory: returns the numeric splits and the schema."""
    frame, target, invalid, seen, data_format = load_all(args)
    typed = type_and_validate(frame, target, args.problem_type, args.max_invalid_row_fraction)
    invalid += typed.invalid
    check_invalid_fraction(invalid, seen, args.max_invalid_row_fraction)
    valid = typed.frame
    if valid[valid["__split__"] == "data"].empty:
        raise rc.DatasetError("every row of the training data is invalid: " + "; ".join(invalid[:5]))
    problem_type = infer_problem_type(valid[target], typed.target_numeric, args.problem_type, target)
    classification = rc.is_classification(problem_type)
    labels = class_labels_of(valid[target], typed.target_numeric) if classification else None

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
    target_encoder: dict[str, Any] = {"type": "numeric"}
    if labels is not None:
        target_encoder = {"type": "label", "classes": labels, "numeric_labels": typed.target_numeric}
    schema = {
        "target_column": target,
        "problem_type": problem_type,
        "feature_names": features,
        "class_labels": labels,
        "rows": {name: len(splits[name]) for name in SPLITS},
        "invalid_rows_dropped": len(invalid),
        "data_format": data_format,
        "encoders": {
            "features": fit_feature_encoders(splits["train"], typed.feature_kinds),
            "target": target_encoder,
        },
    }
    matrices = {name: encode_split(splits[name], target, features, schema) for name in SPLITS}
    for encoder in schema["encoders"]["features"].values():
        encoder.pop("_index", None)  # encode_value's cache, not part of the schema
    if invalid:
        print(f"dropped {len(invalid)} invalid rows, e.g. " + "; ".join(invalid[:INVALID_EXAMPLES_SHOWN]))
    return matrices, schema


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    matrices, schema = build_splits(args)
    for name in SPLITS:
        directory = getattr(args, f"{name}_output_dir") or args.output_dir / name
        write_matrix(matrices[name], directory, name)
    schema_dir = args.schema_output_dir or args.output_dir / "schema"
    schema_dir.mkdir(parents=True, exist_ok=True)
    (schema_dir / rc.SCHEMA_FILE).write_text(json.dumps(schema, indent=2), encoding="utf-8")
    print(
        f"problem_type={schema['problem_type']} target={schema['target_column']!r} "
        f"features={len(schema['feature_names'])} rows={schema['rows']} "
        f"invalid_rows_dropped={schema['invalid_rows_dropped']}"
    )


if __name__ == "__main__":
    rc.run_script(main)
