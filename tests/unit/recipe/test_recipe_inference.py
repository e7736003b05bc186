"""inference.py loaded from the model.tar.gz's code/ folder, as SageMaker's scikit-learn server loads it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
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


def test_missing_and_unseen_values_go_through_the_fitted_pipeline(served: tuple[ModuleType, Any]) -> None:
    # The pipeline imputes the missing number and ignores the unseen category; nothing is refused.
    bodies = ["6.0,2.9,4.5,,purple", "6.0,2.9,4.5,,", ",,,,", '{"instances": [{"sepal length (cm)": 6.0}]}']
    for body in bodies:
        content_type = "application/json" if body.startswith("{") else "text/csv"
        [answer] = json.loads(invoke(served, body, content_type, "*/*")[0])["predictions"]
        assert answer["label"] in {"setosa", "versicolor", "virginica"}
    # The fitted imputer, not a hand-written copy: an empty value answers like the training median.
    pipeline = served[1]["pipeline"]
    median = pipeline.named_steps["features"].named_transformers_["numeric"][0].statistics_[3]
    empty = json.loads(invoke(served, "6.0,2.9,4.5,,large", "text/csv", "*/*")[0])["predictions"][0]
    filled = json.loads(invoke(served, f"6.0,2.9,4.5,{median},large", "text/csv", "*/*")[0])["predictions"][0]
    assert empty == filled


def test_categories_arrive_as_strings_and_numbers_alike(served: tuple[ModuleType, Any]) -> None:
    """JSON clients may send 1 or "1": a category is its canonical text either way."""
    as_objects = {"instances": [dict(zip(FEATURES, VIRGINICA, strict=True))]}
    payload, _ = invoke(served, json.dumps(as_objects), "application/json", "text/csv")
    assert payload == "virginica\n"
    with_target = {"instances": [{**dict(zip(FEATURES, SETOSA, strict=True)), "species": "setosa"}]}
    payload, _ = invoke(served, json.dumps(with_target), "application/json", "text/csv")
    assert payload == "setosa\n"


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
        (
            "1,2,3\n",
            "text/csv",
            "row 1 has 3 values, expected 5 features (no target) in this order: sepal length (cm)",
        ),
        ("a,3.5,1.4,0.2,small\n", "text/csv", "row 1, feature 'sepal length (cm)': 'a' is not a number"),
        ("\n\n", "text/csv", "empty text/csv body"),
        ('{"rows": [[1, 2]]}', "application/json", 'send {"instances": [{"<feature>": value, ...}, ...]}'),
        ("{not json", "application/json", "body is not valid JSON"),
        (
            '{"instances": [{"sepal_len": 5}]}',
            "application/json",
            "instance 1 has unknown features ['sepal_len']",
        ),
        ("5.1,3.5,1.4,0.2,small", "application/x-npy", "unsupported content type 'application/x-npy'"),
        (b"\x89PNG\r\n", "image/png", "this model reads categorical, numeric features, not images"),
    ],
)
def test_bad_requests_say_what_to_send(
    served: tuple[ModuleType, Any], body: str, content_type: str, message: str
) -> None:
    # Without SageMaker's serving toolkit the refusal is a ValueError (the local server answers 400).
    with pytest.raises(ValueError) as raised:
        invoke(served, body, content_type, "application/json")
    assert message in str(raised.value)


def test_bad_requests_become_4xx_responses_in_the_container(
    served: tuple[ModuleType, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In SageMaker's container an exception in a handler is a 500 without the message; the handlers answer
    a refusal with the toolkit's Response and a 4xx status instead."""
    answers: list[dict[str, Any]] = []

    class Response:
        def __init__(self, response: str, status: int, mimetype: str) -> None:
            answers.append({"body": json.loads(response), "status": status, "mimetype": mimetype})

    toolkit = ModuleType("sagemaker_containers")
    beta = ModuleType("sagemaker_containers.beta")
    framework = ModuleType("sagemaker_containers.beta.framework")
    framework.worker = SimpleNamespace(Response=Response)  # type: ignore[attr-defined]
    for name, module in (
        ("sagemaker_containers", toolkit),
        ("sagemaker_containers.beta", beta),
        ("sagemaker_containers.beta.framework", framework),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    handler, model = served
    handler.output_fn(handler.predict_fn(handler.input_fn("a,3.5,1.4,0.2,small", "text/csv"), model), None)
    handler.output_fn(handler.predict_fn(handler.input_fn("1,2", "application/x-npy"), model), None)
    handler.output_fn(handler.predict_fn(handler.input_fn(csv_line(SETOSA), "text/csv"), model), "image/png")
    assert [a["status"] for a in answers] == [400, 415, 406]
    assert "'a' is not a number" in answers[0]["body"]["error"]
    assert all(a["mimetype"] == "application/json" for a in answers)


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
    "script",
    [
        "preprocess.py",
        "train.py",
        "evaluate.py",
        "inference.py",
        "recipe_common.py",
        "recipe_pipeline.py",
        "recipe_report.py",
    ],
)
def test_scripts_parse_as_python_3_9(script: str) -> None:
    """SageMaker's scikit-learn 1.2-1 image runs Python 3.9."""
    source = (RECIPE / script).read_text()
    ast.parse(source, filename=script, feature_version=(3, 9))
    assert "from __future__ import annotations" in source


def test_frame_has_the_features_the_tests_send() -> None:
    assert [c for c in iris_with_category().columns if c != "species"] == FEATURES
