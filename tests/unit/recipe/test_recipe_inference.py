"""inference.py loaded from the model.tar.gz's code/ folder, as SageMaker's scikit-learn server loads it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from recipe_harness import RECIPE, Chain, import_from, iris_with_category

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)", "petal size"]
SETOSA = [5.1, 3.5, 1.4, 0.2, "small"]
VIRGINICA = [7.7, 3.0, 6.1, 2.3, "large"]


def unpack(archive: Path, destination: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")
    return destination


@pytest.fixture(scope="module")
def served(iris_chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Any]:
    model_dir = unpack(iris_chain.archive, tmp_path_factory.mktemp("opt_ml_model"))
    handler = import_from(model_dir / "code" / "inference.py", "served_iris_inference")
    return handler, handler.model_fn(str(model_dir))


@pytest.fixture(scope="module")
def served_regression(
    diabetes_chain: Chain, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModuleType, Any]:
    model_dir = unpack(diabetes_chain.archive, tmp_path_factory.mktemp("opt_ml_model_regression"))
    handler = import_from(model_dir / "code" / "inference.py", "served_diabetes_inference")
    return handler, handler.model_fn(str(model_dir))


def invoke(served: tuple[ModuleType, Any], body: str | bytes, content_type: str, accept: str | None) -> Any:
    handler, model = served
    payload, returned_type = handler.output_fn(
        handler.predict_fn(handler.input_fn(body, content_type), model), accept
    )
    return payload, returned_type


def csv_line(values: list[Any]) -> str:
    return ",".join(str(v) for v in values)


def test_csv_rows_with_and_without_header_return_original_labels(served: tuple[ModuleType, Any]) -> None:
    with_header = "\n".join([",".join(FEATURES), csv_line(SETOSA), csv_line(VIRGINICA)]).encode()
    without_header = "\n".join([csv_line(SETOSA), csv_line(VIRGINICA)]) + "\n"

    for body in (with_header, without_header):
        payload, content_type = invoke(served, body, "text/csv", "text/csv")
        assert content_type == "text/csv"
        assert payload == "setosa\nvirginica\n"


def test_json_lists_and_objects_return_labels_with_probabilities(served: tuple[ModuleType, Any]) -> None:
    as_lists = json.dumps({"instances": [SETOSA, VIRGINICA]})
    as_objects = json.dumps(
        {"instances": [dict(zip(FEATURES, row, strict=True)) for row in (SETOSA, VIRGINICA)]}
    )

    for body in (as_lists, as_objects):
        payload, content_type = invoke(served, body, "application/json; charset=utf-8", "application/json")
        assert content_type == "application/json"
        predictions = json.loads(payload)["predictions"]
        assert [p["label"] for p in predictions] == ["setosa", "virginica"]
        for prediction in predictions:
            probabilities = prediction["probabilities"]
            assert set(probabilities) == {"setosa", "versicolor", "virginica"}
            assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
            assert max(probabilities, key=probabilities.get) == prediction["label"]


def test_missing_and_unseen_values_are_encoded_like_training(served: tuple[ModuleType, Any]) -> None:
    # Empty numeric value -> the training median; unseen or missing category -> the one unknown code.
    median = served[1]["schema"]["encoders"]["features"]["petal width (cm)"]["fill_value"]
    bodies = ["6.0,2.9,4.5,,purple", f"6.0,2.9,4.5,{median},green", f"6.0,2.9,4.5,{median},"]
    answers = [json.loads(invoke(served, body, "text/csv", "*/*")[0])["predictions"][0] for body in bodies]
    assert answers[0] == answers[1] == answers[2]
    known = json.loads(invoke(served, "6.0,2.9,4.5,,small", "text/csv", "*/*")[0])["predictions"][0]
    assert known["probabilities"] != answers[0]["probabilities"]


def test_regression_returns_scores(served_regression: tuple[ModuleType, Any]) -> None:
    model = served_regression[1]
    names = model["schema"]["feature_names"]
    row = [0.0] * len(names)

    payload, _ = invoke(served_regression, json.dumps({"instances": [row, row]}), "application/json", None)
    scores = [p["score"] for p in json.loads(payload)["predictions"]]
    assert len(scores) == 2
    assert 25 <= scores[0] <= 346  # inside the target's range in the diabetes data
    csv_payload, _ = invoke(served_regression, csv_line(row), "text/csv", "text/csv")
    assert float(csv_payload.strip()) == pytest.approx(scores[0])


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("1,2,3\n", "text/csv", "row 1 has 3 values, expected 5 features in this order: sepal length (cm)"),
        ("a,3.5,1.4,0.2,small\n", "text/csv", "feature 'sepal length (cm)': 'a' is not a number"),
        ("\n\n", "text/csv", "empty text/csv body"),
        ('{"rows": [[1, 2]]}', "application/json", 'send {"instances": [[v1, v2, ...], ...]}'),
        ("{not json", "application/json", "body is not valid JSON"),
        ('{"instances": [{"sepal length (cm)": 5}]}', "application/json", "instance 1 lacks features"),
        ("5.1,3.5,1.4,0.2,small", "application/x-npy", "unsupported content type 'application/x-npy'"),
    ],
)
def test_bad_requests_say_what_to_send(
    served: tuple[ModuleType, Any], body: str, content_type: str, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        invoke(served, body, content_type, "application/json")
    assert message in str(raised.value)


def test_unsupported_accept_is_refused(served: tuple[ModuleType, Any]) -> None:
    with pytest.raises(ValueError, match="unsupported accept type 'application/x-npy'"):
        invoke(served, csv_line(SETOSA), "text/csv", "application/x-npy")


def test_the_model_archive_serves_without_the_recipe_folder(iris_chain: Chain, tmp_path: Path) -> None:
    """The serving code inside model.tar.gz is self-contained: no import reaches back into the repository."""
    model_dir = unpack(iris_chain.archive, tmp_path / "model")
    script = (
        "import sys; sys.path[:] = [p for p in sys.path if 'mlops_common' not in p]\n"
        f"sys.path.insert(0, {str(model_dir / 'code')!r})\n"
        "import inference\n"
        f"model = inference.model_fn({str(model_dir)!r})\n"
        f"request = inference.input_fn({csv_line(VIRGINICA)!r}, 'text/csv')\n"
        "print(inference.output_fn(inference.predict_fn(request, model), 'text/csv')[0], end='')\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False, timeout=60
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "virginica\n"


@pytest.mark.parametrize(
    "script", ["preprocess.py", "train.py", "evaluate.py", "inference.py", "recipe_common.py"]
)
def test_scripts_parse_as_python_3_9(script: str) -> None:
    """SageMaker's scikit-learn 1.2-1 image runs Python 3.9."""
    source = (RECIPE / script).read_text()
    ast.parse(source, filename=script, feature_version=(3, 9))
    assert "from __future__ import annotations" in source


def test_frame_has_the_features_the_tests_send() -> None:
    assert [c for c in iris_with_category().columns if c != "species"] == FEATURES
