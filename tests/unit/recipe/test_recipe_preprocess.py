"""preprocess.py on real data in every supported format, and the errors users get for bad data.

The splits keep raw values (a header row, the target included): nothing is encoded before training.
"""

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


def read_split(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name / f"{name}.csv", dtype=str, keep_default_na=False)


def test_csv_with_header_is_split_with_raw_values_and_described(tmp_path: Path) -> None:
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
    assert set(schema["feature_kinds"].values()) == {"numeric"}
    train = read_split(tmp_path / "out", "train")
    assert list(train.columns) == [*schema["feature_names"], "label"]
    assert len(train) == 120
    # Raw values: class names, not codes, and the features as they were.
    assert set(train["label"]) == {"setosa", "versicolor", "virginica"}
    originals = {tuple(row) for row in frame.round(6).astype(str).to_numpy()}
    raw = train.astype({c: float for c in schema["feature_names"]}).round(6).astype(str)
    assert all(tuple(row) in originals for row in raw.to_numpy())
    # Stratified: every class reaches the small splits, in proportion.
    assert read_split(tmp_path / "out", "test")["label"].value_counts().to_dict() == {
        "setosa": 5,
        "versicolor": 5,
        "virginica": 5,
    }


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
    assert list(test.columns) == [*[c for c in frame.columns if c != "label"], "label"]
    np.testing.assert_allclose(test["label"].astype(float), expected["label"].to_numpy())
    np.testing.assert_allclose(
        test.drop(columns="label").astype(float).to_numpy(),
        expected.drop(columns="label").to_numpy(),
        rtol=1e-9,
    )


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


def test_parquet_regression_with_a_categorical_feature_keeps_missing_values(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = load_frame("diabetes", target="progression")
    frame["sex"] = np.where(frame["sex"] > 0, "m", "f")
    frame.loc[3, "bmi"] = np.nan  # missing numeric value: kept for the model's imputer, not dropped
    frame.to_parquet(data / "diabetes.parquet", index=False)

    finished = preprocess(data, tmp_path / "out", "--target-column", "progression")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["problem_type"] == "regression"
    assert schema["class_labels"] is None
    assert schema["invalid_rows_dropped"] == 0
    assert schema["feature_kinds"]["sex"] == "categorical"
    assert schema["feature_kinds"]["bmi"] == "numeric"
    all_rows = pd.concat([read_split(tmp_path / "out", name) for name in ("train", "validation", "test")])
    assert sorted(all_rows["progression"].astype(float)) == sorted(frame["progression"])
    assert set(all_rows["sex"]) == {"f", "m"}
    assert (all_rows["bmi"] == "").sum() == 1


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


# ---------------------------------------------------------------- text, images and kinds


def test_text_documents_in_class_folders_become_a_text_dataset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for label, words in (("good", "lovely charming film"), ("bad", "dull tedious film")):
        (data / label).mkdir(parents=True)
        for number in range(12):
            (data / label / f"{number}.txt").write_text(f"A {words} number {number}\n")
    (data / "bad" / "broken.txt").write_bytes(b"\xff\xfe\xfa not utf-8")
    (data / "_READY").write_text("")

    finished = preprocess(data, tmp_path / "out", "--max-invalid-row-fraction", "0.1")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["data_format"] == "text"
    assert schema["feature_kinds"] == {"text": "text"}
    assert schema["class_labels"] == ["bad", "good"]
    assert schema["invalid_rows_dropped"] == 1
    assert "bad/broken.txt: not UTF-8 text" in finished.stdout
    train = read_split(tmp_path / "out", "train")
    assert train["text"].str.startswith("A ").all()


def test_a_loose_file_beside_class_folders_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "good").mkdir(parents=True)
    (data / "good" / "1.txt").write_text("fine words here")
    (data / "stray.txt").write_text("where do I belong")

    finished = preprocess(data, tmp_path / "out", "--data-format", "text")

    assert finished.returncode == 2
    assert "stray.txt is not in a class folder" in finished.last_error_line


def test_images_in_class_folders_are_copied_beside_their_split(tmp_path: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = tmp_path / "data"
    for index in range(60):
        folder = data / str(digits.target[index])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[index] * 15).astype("uint8")).save(folder / f"{index}.png")
    (data / "3" / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")

    finished = preprocess(data, tmp_path / "out")

    assert_ok(finished)
    schema = read_json(tmp_path / "out" / "schema" / "schema.json")
    assert schema["feature_kinds"] == {"image": "image"} and schema["data_format"] == "image"
    assert schema["invalid_rows_dropped"] == 1 and "truncated.png: not a readable image" in finished.stdout
    test = read_split(tmp_path / "out", "test")
    for path, label in zip(test["image"], test["label"], strict=True):
        assert path.startswith(f"images/{label}/")
        assert (tmp_path / "out" / "test" / path).read_bytes()[:4] == b"\x89PNG"


def test_prose_is_text_and_short_labels_are_categories(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {
            "review": f"the plot was slow but review {i} liked it",
            "city": ["Paris", "Rome"][i % 2],
            "label": i % 2,
        }
        for i in range(30)
    ]
    (data / "r.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    detected = preprocess(data, tmp_path / "auto")
    named = preprocess(data, tmp_path / "named", "--text-columns", '["city"]')
    wrong = preprocess(data, tmp_path / "wrong", "--text-columns", '["comments"]')

    assert_ok(detected)
    assert read_json(tmp_path / "auto" / "schema" / "schema.json")["feature_kinds"] == {
        "review": "text",
        "city": "categorical",
    }
    assert_ok(named)
    assert read_json(tmp_path / "named" / "schema" / "schema.json")["feature_kinds"]["city"] == "text"
    assert wrong.returncode == 2
    assert "text_columns names ['comments']" in wrong.last_error_line


def test_a_malformed_libsvm_line_is_an_invalid_row(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = load_frame("breast_cancer")
    write_libsvm(frame, "label", data / "cancer.libsvm")
    lines = (data / "cancer.libsvm").read_text().splitlines()
    lines[4] = "1 3:abc 7:1.5"
    (data / "cancer.libsvm").write_text("\n".join(lines) + "\n")

    finished = preprocess(data, tmp_path / "out")

    assert_ok(finished)
    assert "cancer.libsvm:5: not '<label> <index>:<value> ...'" in finished.stdout
    assert read_json(tmp_path / "out" / "schema" / "schema.json")["invalid_rows_dropped"] == 1
