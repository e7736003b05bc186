"""train.py and evaluate.py chained on real data, as the pipeline's training and evaluation jobs run them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import joblib
import pytest
from recipe_harness import (
    RECIPE,
    Chain,
    assert_ok,
    evaluate,
    install_code,
    load_frame,
    read_json,
    run_chain,
    run_python,
    train,
)

VALIDATION_LINE = re.compile(r"^validation:([a-z0-9_]+)=(-?[0-9]+\.[0-9]+)$", re.MULTILINE)


def test_multiclass_chain_scores_well_and_ships_the_serving_code(iris_chain: Chain) -> None:
    model_dir = iris_chain.ml_root / "model"
    assert (model_dir / "model.joblib").is_file()
    assert read_json(model_dir / "schema.json") == iris_chain.schema
    assert (model_dir / "code" / "inference.py").read_bytes() == (RECIPE / "inference.py").read_bytes()
    assert (model_dir / "code" / "recipe_common.py").read_bytes() == (
        RECIPE / "recipe_common.py"
    ).read_bytes()

    validation = dict(VALIDATION_LINE.findall(iris_chain.train_output.stdout))
    assert set(validation) == {"accuracy", "f1_macro", "precision_macro", "recall_macro"}
    assert float(validation["accuracy"]) > 0.8

    report = iris_chain.evaluation
    assert report["problem_type"] == "multiclass_classification"
    assert report["test_rows"] == iris_chain.schema["rows"]["test"] == 15
    assert report["class_labels"] == ["setosa", "versicolor", "virginica"]
    assert set(report["metrics"]) == {"accuracy", "f1_macro", "precision_macro", "recall_macro"}
    assert report["metrics"]["accuracy"] > 0.8
    assert all(0.0 <= value <= 1.0 for value in report["metrics"].values())
    # The fitted pipeline travels in model.joblib with the estimator: no separate encoder anywhere.
    pipeline = joblib.load(model_dir / "model.joblib")
    assert [name for name, _ in pipeline.steps] == ["features", "model"]
    assert (model_dir / "code" / "recipe_pipeline.py").is_file()
    assert (model_dir / "code" / "requirements.txt").is_file()


def report_dir(chain: Chain) -> Path:
    return chain.archive.parent.parent / "evaluation" / "report"


def test_classification_report_has_one_confusion_row_per_class_and_embeds_its_plots(
    iris_chain: Chain,
) -> None:
    matrix = iris_chain.evaluation["confusion_matrix"]
    assert matrix["labels"] == ["setosa", "versicolor", "virginica"]
    assert [len(row) for row in matrix["matrix"]] == [3, 3, 3]
    assert sum(map(sum, matrix["matrix"])) == iris_chain.evaluation["test_rows"]
    assert iris_chain.evaluation["report"] == "report/report.html"
    plots = {p.stem for p in report_dir(iris_chain).glob("*.png")}
    assert plots == {
        "confusion_matrix",
        "roc_curves",
        "precision_recall_curves",
        "per_class_metrics",
        "feature_importance",
        "champion_vs_challenger",
    }
    page = (report_dir(iris_chain) / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(plots)
    assert "http://" not in page and "https://" not in page


def test_regression_report_plots_predictions_and_residuals(diabetes_chain: Chain) -> None:
    plots = {p.stem for p in report_dir(diabetes_chain).glob("*.png")}
    assert {"predicted_vs_actual", "residuals", "feature_importance", "champion_vs_challenger"} == plots
    assert "confusion_matrix" not in diabetes_chain.evaluation


def test_regression_chain_reports_error_metrics(diabetes_chain: Chain) -> None:
    report = diabetes_chain.evaluation
    assert report["problem_type"] == "regression"
    assert report["class_labels"] is None
    assert set(report["metrics"]) == {"rmse", "mae", "r2"}
    target = load_frame("diabetes")["label"]
    # Better than predicting the mean (r2 > 0) and errors well below the target's spread.
    assert report["metrics"]["r2"] > 0.2
    assert 0 < report["metrics"]["mae"] <= report["metrics"]["rmse"] < target.std()
    validation = dict(VALIDATION_LINE.findall(diabetes_chain.train_output.stdout))
    assert set(validation) == {"rmse", "mae", "r2"}


def test_lower_is_better_names_the_error_metrics() -> None:
    sys.path.insert(0, str(RECIPE))
    try:
        import recipe_common
    finally:
        sys.path.remove(str(RECIPE))
    assert set(recipe_common.LOWER_IS_BETTER) == {"rmse", "mae"}
    assert recipe_common.DEFAULT_METRIC["regression"] in recipe_common.LOWER_IS_BETTER
    assert recipe_common.DEFAULT_METRIC["binary_classification"] not in recipe_common.LOWER_IS_BETTER


def test_binary_chain_with_linear_model_adds_roc_auc(tmp_path: Path) -> None:
    chain = run_chain(
        tmp_path,
        load_frame("breast_cancer"),
        hp=(
            "--algorithm",
            '"linear"',
            "--sagemaker_program",
            '"train.py"',
            "--sagemaker_region",
            '"us-east-1"',
        ),
    )

    assert chain.evaluation["problem_type"] == "binary_classification"
    assert chain.evaluation["metrics"]["roc_auc"] > 0.9
    assert chain.evaluation["metrics"]["accuracy"] > 0.9
    assert read_json(chain.ml_root / "model" / "hyperparameters.json")["algorithm"] == "linear"


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        (
            ("--n-estimators", "10", "--depth", "3"),
            "unknown hyperparameter 'depth'; known hyperparameters: algorithm, n-estimators, max-depth, "
            "learning-rate, seed",
        ),
        (("--n-estimators", "many"), "hyperparameter n-estimators='many' is not a valid int"),
        (("--algorithm", "xgboost"), "must be one of auto, random_forest, gradient_boosting, linear"),
    ],
)
def test_bad_hyperparameters_fail_with_a_reason(
    iris_chain: Chain, tmp_path: Path, hyperparameters: tuple[str, ...], message: str
) -> None:
    finished = train(iris_chain.splits, tmp_path / "ml", *hyperparameters)

    assert finished.returncode != 0
    assert message in finished.last_error_line
    failure = (tmp_path / "ml" / "output" / "failure").read_text()
    assert message in failure
    assert not (tmp_path / "ml" / "model" / "model.joblib").exists()


def test_a_checkpoint_with_the_same_inputs_is_reused_not_refitted(iris_chain: Chain, tmp_path: Path) -> None:
    assert "checkpoint: saved" in iris_chain.train_output.stdout
    # A resumed spot job: SageMaker restores the checkpoints folder, the model dir starts empty.
    ml_root = tmp_path / "ml"
    shutil.copytree(iris_chain.ml_root / "checkpoints", ml_root / "checkpoints")

    resumed = train(iris_chain.splits, ml_root, "--n-estimators", "30")

    assert_ok(resumed)
    assert "checkpoint: reusing" in resumed.stdout
    assert "checkpoint: saved" not in resumed.stdout
    assert VALIDATION_LINE.findall(resumed.stdout) == VALIDATION_LINE.findall(iris_chain.train_output.stdout)
    assert (ml_root / "model" / "model.joblib").is_file()

    changed = train(iris_chain.splits, ml_root, "--n-estimators", "31")

    assert_ok(changed)
    assert "checkpoint: reusing" not in changed.stdout
    assert "checkpoint: saved" in changed.stdout
    assert len(list((ml_root / "checkpoints").glob("model-*.joblib"))) == 2


def test_training_without_a_schema_channel_fails_clearly(iris_chain: Chain, tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    shutil.copytree(iris_chain.splits, splits)
    shutil.rmtree(splits / "schema")

    finished = train(splits, tmp_path / "ml")

    assert finished.returncode == 2
    assert "schema.json not found" in finished.last_error_line
    assert "schema.json not found" in (tmp_path / "ml" / "output" / "failure").read_text()


def test_evaluate_paths_default_to_the_job_root(iris_chain: Chain, tmp_path: Path) -> None:
    root = tmp_path / "processing"
    code = install_code(root)
    (root / "input" / "model").mkdir(parents=True)
    shutil.copy(iris_chain.archive, root / "input" / "model" / "model.tar.gz")
    shutil.copytree(iris_chain.splits / "test", root / "input" / "test")

    finished = run_python(code / "evaluate.py", [], cwd=tmp_path)

    assert_ok(finished)
    assert read_json(root / "output" / "evaluation" / "evaluation.json") == iris_chain.evaluation


def test_evaluate_without_a_model_archive_fails_clearly(iris_chain: Chain, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()

    finished = evaluate(tmp_path / "model", iris_chain.splits / "test", tmp_path / "out")

    assert finished.returncode == 2
    assert finished.last_error_line.startswith("DatasetError: no model.tar.gz at")
    assert not (tmp_path / "out" / "evaluation.json").exists()


def test_evaluate_refuses_an_archive_escaping_its_folder(iris_chain: Chain, tmp_path: Path) -> None:
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as tar:
        tar.add(iris_chain.ml_root / "model" / "model.joblib", arcname="model.joblib")
        tar.add(evil, arcname="../escaped.txt")

    finished = evaluate(tmp_path / "bad.tar.gz", iris_chain.splits / "test", tmp_path / "out")

    assert finished.returncode == 2
    assert "refusing unsafe path '../escaped.txt'" in finished.last_error_line
    assert not (tmp_path / "escaped.txt").exists()


def test_recipe_common_imports_without_the_ml_libraries() -> None:
    """Lambda functions import LOWER_IS_BETTER from the layer, where numpy and scikit-learn are absent."""
    code = (
        "import sys\n"
        "for name in ('numpy', 'pandas', 'sklearn', 'joblib'): sys.modules[name] = None\n"
        "from mlops_common.recipe.recipe_common import LOWER_IS_BETTER\n"
        "print(sorted(LOWER_IS_BETTER))\n"
    )
    layer = RECIPE.parents[1]
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=layer, check=False, timeout=60
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "['mae', 'rmse']"


def test_the_champions_metrics_appear_beside_the_challengers(iris_chain: Chain, tmp_path: Path) -> None:
    finished = run_python(
        RECIPE / "evaluate.py",
        [
            "--model-path",
            str(iris_chain.archive),
            "--test-path",
            str(iris_chain.splits / "test"),
            "--output-dir",
            str(tmp_path),
            "--champion-metrics",
            '{"accuracy": 0.4321, "f1_macro": 0.4}',
            "--champion-package",
            "arn:aws:sagemaker:us-east-1:123456789012:model-package/iris/3",
        ],
    )
    assert_ok(finished)
    evaluation = read_json(tmp_path / "evaluation.json")
    assert evaluation["champion"] == {
        "package": "arn:aws:sagemaker:us-east-1:123456789012:model-package/iris/3",
        "metrics": {"accuracy": 0.4321, "f1_macro": 0.4},
    }
    page = (tmp_path / "report" / "report.html").read_text()
    assert "<td>0.4321</td>" in page and "model-package/iris/3" in page
