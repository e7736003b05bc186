"""preprocess.py on real data in every supported format, and the errors users get for bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recipe_harness import (
    RECIPE,
    assert_ok,
    import_from,
    install_code,
    load_frame,
    preprocess,
    read_json,
    run_python,
    write_libsvm,
)

pp = import_from(RECIPE / "preprocess.py", "recipe_preprocess_under_test")


def read_split(out: Path, name: str) -> np.ndarray:
    return np.loadtxt(out / name / f"{name}.csv", delimiter=",", ndmin=2)


def test_csv_with_header_is_split_encoded_and_described(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "part").mkdir(parents=True)
    frame = load_frame("iris", label_names=True)
    frame.iloc[:100].to_csv(data / "part" / "a.csv", index=False)
    frame.iloc[100:].to_csv(data / "b.csv", index=False)
    # Objects the pipeline keeps next to the data must not be read as data.
    (data / "pipeline.json").write_text('{"target_column": "label"}')
    (data / "_READY").write_text("")

    finished = preprocess(data, tmp_path / "out")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["problem_type"] == "multiclass_classification"
    assert schema["target_column"] == "label"
    assert schema["class_labels"] == ["setosa", "versicolor", "virginica"]
    assert schema["feature_names"] == [c for c in frame.columns if c != "label"]
    assert schema["rows"] == {"train": 120, "validation": 15, "test": 15}
    assert schema["invalid_rows_dropped"] == 0
    train = read_split(tmp_path / "out", "train")
    assert train.shape == (120, 5)
    assert set(np.unique(train[:, 0])) == {0.0, 1.0, 2.0}
    # Target first, then the features unchanged (numeric columns pass through).
    originals = {tuple(row) for row in frame.drop(columns="label").round(6).to_numpy()}
    assert all(tuple(np.round(row[1:], 6)) in originals for row in train)
    # Stratified: every class reaches the small splits.
    assert set(np.unique(read_split(tmp_path / "out", "test")[:, 0])) == {0.0, 1.0, 2.0}


def test_csv_without_header_takes_the_target_by_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = load_frame("breast_cancer")
    frame[["label", *[c for c in frame.columns if c != "label"]]].to_csv(
        data / "d.csv", index=False, header=False
    )

    finished = preprocess(data, tmp_path / "out", "--target-column", "0")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["problem_type"] == "binary_classification"
    assert schema["class_labels"] == ["0", "1"]
    assert schema["target_column"] == "column_0"
    assert len(schema["feature_names"]) == 30
    assert sum(schema["rows"].values()) == len(frame)


def test_paths_default_to_the_job_root_the_script_was_installed_in(tmp_path: Path) -> None:
    """The offline runner maps /opt/ml/processing to a job root and passes no path arguments."""
    root = tmp_path / "jobs" / "prep-1" / "processing"
    code = install_code(root)
    data = root / "input" / "data"
    data.mkdir(parents=True)
    # A semicolon-separated export without a header: the target by index.
    load_frame("wine").to_csv(data / "wine.csv", index=False, header=False, sep=";")

    finished = run_python(code / "preprocess.py", ["--target-column", "13"], cwd=tmp_path)

    assert_ok(finished)
    schema = read_json(root / "output" / "schema" / "schema.json")
    assert schema["class_labels"] == ["0", "1", "2"]
    assert len(schema["feature_names"]) == 13
    for split in ("train", "validation", "test"):
        assert (root / "output" / split / f"{split}.csv").stat().st_size > 0


def test_csv_without_header_and_a_named_target_says_to_use_an_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    load_frame("iris").to_csv(data / "d.csv", index=False, header=False)

    finished = preprocess(data, tmp_path / "out")

    assert finished.returncode == 2
    assert finished.last_error_line.startswith("DatasetError: target column 'label' not found")
    assert "no header row" in finished.last_error_line
    assert "0-based column index" in finished.last_error_line


def test_missing_target_column_names_it_and_the_columns_found(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    load_frame("iris", target="species").to_csv(data / "iris.csv", index=False)

    finished = preprocess(data, tmp_path / "out", "--target-column", "variety")

    assert finished.returncode == 2
    line = finished.last_error_line
    assert line.startswith("DatasetError: target column 'variety' not found in iris.csv")
    assert (
        "columns found: sepal length (cm), sepal width (cm), petal length (cm), petal width (cm), species"
        in line
    )
    assert "training/<dataset>/pipeline.json" in line
    assert not (tmp_path / "out" / "schema").exists()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"d.csv": "a,b,label\n"}, "the dataset is empty"),
        ({"pipeline.json": "{}", "_READY": "", "empty.csv": ""}, "no data files"),
    ],
)
def test_empty_data_is_refused(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text)

    finished = preprocess(data, tmp_path / "out")

    assert finished.returncode == 2
    assert finished.last_error_line.startswith("DatasetError:")
    assert expected in finished.last_error_line


def _iris_with_broken_rows(path: Path, broken: int) -> int:
    frame = load_frame("iris")
    lines = frame.to_csv(index=False).splitlines()
    for i in range(1, broken + 1):
        lines[i * 10] = "oops,not,a,row"  # wrong field count
    lines[5] = lines[5].replace(lines[5].split(",")[0], "abc", 1)  # text in a numeric column
    path.write_text("\n".join(lines) + "\n")
    return len(frame)


def test_invalid_rows_below_the_threshold_are_dropped_and_counted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    total = _iris_with_broken_rows(data / "iris.csv", broken=3)

    finished = preprocess(data, tmp_path / "out", "--max-invalid-row-fraction", "0.05")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["invalid_rows_dropped"] == 4
    assert sum(schema["rows"].values()) == total - 4
    assert "iris.csv:11: 4 fields, expected 5" in finished.stdout
    assert "'abc' in numeric column 'sepal length (cm)' is not a number" in finished.stdout


def test_invalid_rows_beyond_the_threshold_fail_with_examples(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _iris_with_broken_rows(data / "iris.csv", broken=9)

    finished = preprocess(data, tmp_path / "out", "--max-invalid-row-fraction", "0.05")

    assert finished.returncode == 2
    line = finished.last_error_line
    assert line.startswith("DatasetError: 10 of 150 rows (6.7%) are invalid")
    assert "max_invalid_row_fraction=0.05" in line
    assert "iris.csv:11: 4 fields, expected 5" in line


def test_user_provided_validation_and_test_splits_replace_splitting(tmp_path: Path) -> None:
    frame = load_frame("wine").sample(frac=1.0, random_state=0)
    dirs = {name: tmp_path / name for name in ("data", "validation", "test")}
    for directory in dirs.values():
        directory.mkdir()
    frame.iloc[:100].to_csv(dirs["data"] / "train.csv", index=False)
    frame.iloc[100:130].to_csv(dirs["validation"] / "v.csv", index=False)
    # Same columns in another order: matched by name.
    frame.iloc[130:][list(reversed(frame.columns))].to_csv(dirs["test"] / "t.csv", index=False)

    finished = preprocess(
        dirs["data"],
        tmp_path / "out",
        "--validation-input-dir",
        str(dirs["validation"]),
        "--test-input-dir",
        str(dirs["test"]),
    )

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["rows"] == {"train": 100, "validation": 30, "test": 48}
    test = read_split(tmp_path / "out", "test")
    expected = frame.iloc[130:]
    np.testing.assert_allclose(test[:, 0], expected["label"].to_numpy())
    np.testing.assert_allclose(test[:, 1:], expected.drop(columns="label").to_numpy(), rtol=1e-9)


def test_only_a_test_split_provided_splits_validation_from_the_data(tmp_path: Path) -> None:
    frame = load_frame("iris")
    (tmp_path / "data").mkdir()
    (tmp_path / "test").mkdir()
    frame.iloc[:130].to_csv(tmp_path / "data" / "d.csv", index=False)
    frame.iloc[130:].to_csv(tmp_path / "test" / "t.csv", index=False)

    finished = preprocess(tmp_path / "data", tmp_path / "out", "--test-input-dir", str(tmp_path / "test"))

    assert_ok(finished)
    rows = read_json(tmp_path / "out" / "schema" / "schema.json")["rows"]
    assert rows["test"] == 20
    assert rows["train"] + rows["validation"] == 130
    assert rows["validation"] == round(130 * 0.1 / 0.9)


def test_parquet_regression_with_a_text_feature(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = load_frame("diabetes", target="progression")
    frame["sex"] = np.where(frame["sex"] > 0, "m", "f")
    frame.loc[3, "bmi"] = np.nan  # missing numeric value: filled, not dropped
    frame.to_parquet(data / "diabetes.parquet", index=False)

    finished = preprocess(data, tmp_path / "out", "--target-column", "progression")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["problem_type"] == "regression"
    assert schema["class_labels"] is None
    assert schema["invalid_rows_dropped"] == 0
    assert schema["encoders"]["features"]["sex"] == {"type": "categorical", "categories": ["f", "m"]}
    assert schema["encoders"]["features"]["bmi"]["type"] == "numeric"
    all_rows = np.vstack([read_split(tmp_path / "out", name) for name in ("train", "validation", "test")])
    assert not np.isnan(all_rows).any()
    assert sorted(all_rows[:, 0]) == sorted(frame["progression"])
    sex = all_rows[:, 1 + schema["feature_names"].index("sex")]
    assert set(np.unique(sex)) == {0.0, 1.0}


def test_json_lines_multiclass(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = load_frame("wine", target="cultivar")
    lines = [json.dumps(record) for record in frame.to_dict(orient="records")]
    lines.insert(7, "{not json")
    (data / "wine.jsonl").write_text("\n".join(lines) + "\n")

    finished = preprocess(data, tmp_path / "out", "--target-column", "cultivar", "--data-format", "jsonl")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["problem_type"] == "multiclass_classification"
    assert schema["class_labels"] == ["0", "1", "2"]
    assert schema["invalid_rows_dropped"] == 1
    assert sum(schema["rows"].values()) == len(frame)


def test_libsvm_binary(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = load_frame("breast_cancer")
    write_libsvm(frame, "label", data / "cancer.libsvm")

    finished = preprocess(data, tmp_path / "out")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["problem_type"] == "binary_classification"
    assert schema["target_column"] == "label"
    assert schema["feature_names"] == [f"feature_{i}" for i in range(1, 31)]
    assert sum(schema["rows"].values()) == len(frame)


def test_regression_requested_for_a_text_target_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    load_frame("iris", label_names=True).to_csv(data / "iris.csv", index=False)

    finished = preprocess(data, tmp_path / "out", "--problem-type", "regression")

    assert finished.returncode == 2
    assert "problem_type is regression but target column 'label' is not numeric" in finished.last_error_line


# ---------------------------------------------------------------- rules, tested in-process


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b"] * 10, "binary_classification"),
        (["x", "y", "z"] * 10, "multiclass_classification"),
        ([str(i % 3) for i in range(30)], "multiclass_classification"),  # few integers, >= 5 rows each
        ([str(i % 10) for i in range(30)], "regression"),  # 10 values but only 3 rows each
        ([str(i) for i in range(200)], "regression"),  # many distinct integers
        ([f"{i % 3}.5" for i in range(30)], "regression"),  # not integers
    ],
)
def test_problem_type_auto_rule(values: list[str], expected: str) -> None:
    series = pd.Series(values, dtype=object)
    numeric = all(pp.rc.to_number(v) is not None for v in values)
    assert pp.infer_problem_type(series, numeric, "auto", "label") == expected


def test_binary_requested_for_three_classes_is_refused() -> None:
    with pytest.raises(pp.rc.DatasetError, match="has 3 classes"):
        pp.infer_problem_type(pd.Series(["a", "b", "c"] * 5), False, "binary_classification", "y")


@pytest.mark.parametrize(
    ("first", "target", "expected"),
    [
        (["sepal", "petal", "label"], "label", True),  # names the target
        (["sepal", "petal", "kind"], "0", True),  # text above numbers
        (["5.1", "3.5", "setosa"], "label", False),  # a data row
        (["red", "big", "yes"], "0", False),  # text above text: no evidence of a header
    ],
)
def test_header_detection(first: list[str], target: str, expected: bool) -> None:
    sample = (
        [["4.9", "3.0", "setosa"], ["red", "small", "no"]] if first[0] == "red" else [["4.9", "3.0", "x"]]
    )
    assert pp.looks_like_header(first, sample, target) is expected
