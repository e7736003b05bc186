"""Training job (SageMaker script mode): fit a scikit-learn model on the preprocessed splits.

SageMaker conventions (the training toolkit sets these; the offline job runner sets the same):

    SM_CHANNEL_TRAIN       dir with train.csv       (no header, target first, all numeric; from preprocess.py)
    SM_CHANNEL_VALIDATION  dir with validation.csv  (same layout; metrics printed for MetricDefinitions)
    SM_CHANNEL_SCHEMA      dir with schema.json
    SM_MODEL_DIR           /opt/ml/model: model.joblib, schema.json, code/inference.py, code/recipe_common.py
    <root> = parent of SM_MODEL_DIR (/opt/ml):
        <root>/output/failure  the failure reason (SageMaker shows it as FailureReason); exit code non-zero
        <root>/checkpoints     a model fitted with the same hyperparameters and data is reused, not refitted
                               (managed spot training restores this folder when a job resumes)

Hyperparameters arrive as ``--name value``: --algorithm random_forest|gradient_boosting|linear,
--n-estimators, --max-depth (0 = unlimited; unset = the algorithm's default), --learning-rate, --seed.
Values may be JSON-encoded strings (``"\\"linear\\""``) as the SageMaker SDK writes them. ``sagemaker_*``
entries are the toolkit's own and are ignored. Output: one ``validation:<metric>=<value>`` line per metric.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import joblib

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recipe_common as rc

ALGORITHMS = ("random_forest", "gradient_boosting", "linear")
# name -> (parser, default); names are spelled with hyphens, underscores are accepted too.
HYPERPARAMETERS: dict[str, tuple[Any, Any]] = {
    "algorithm": (str, "random_forest"),
    "n-estimators": (int, 100),
    "max-depth": (int, None),
    "learning-rate": (float, 0.1),
    "seed": (int, 42),
}
CODE_FILES = ("inference.py", "recipe_common.py")


def parse_hyperparameters(argv: list[str]) -> dict[str, Any]:
    """``--name value`` / ``--name=value`` pairs into typed values; unknown names fail, listing known ones."""
    raw: dict[str, str] = {}
    position = 0
    while position < len(argv):
        token = argv[position]
        if not token.startswith("--"):
            raise rc.DatasetError(f"unexpected argument {token!r}: hyperparameters arrive as --name value")
        name, has_value, value = token[2:].partition("=")
        if not has_value:
            if position + 1 >= len(argv):
                raise rc.DatasetError(f"hyperparameter {token} has no value")
            value = argv[position + 1]
            position += 1
        position += 1
        raw[name.replace("_", "-")] = value
    return {name: _typed(name, value) for name, value in raw.items() if not name.startswith("sagemaker-")} | {
        name: default for name, (_, default) in HYPERPARAMETERS.items() if name not in raw
    }


def _typed(name: str, value: str) -> Any:
    if name not in HYPERPARAMETERS:
        raise rc.DatasetError(
            f"unknown hyperparameter {name!r}; known hyperparameters: {', '.join(HYPERPARAMETERS)}. Fix "
            "hyperparameters in training/<dataset>/pipeline.json"
        )
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = json.loads(value)  # the SageMaker SDK JSON-encodes hyperparameter values
    parser = HYPERPARAMETERS[name][0]
    try:
        typed = parser(value)
    except ValueError as exc:
        raise rc.DatasetError(f"hyperparameter {name}={value!r} is not a valid {parser.__name__}") from exc
    _check_range(name, typed)
    return typed


# name -> (is the value acceptable?, what to write instead)
RULES: dict[str, tuple[Any, str]] = {
    "algorithm": (lambda v: v in ALGORITHMS, f"must be one of {', '.join(ALGORITHMS)}"),
    "n-estimators": (lambda v: v >= 1, "must be at least 1"),
    "max-depth": (lambda v: v >= 0, "must be 0 (unlimited) or more"),
    "learning-rate": (lambda v: v > 0, "must be greater than 0"),
}


def _check_range(name: str, value: Any) -> None:
    acceptable, advice = RULES.get(name, (lambda v: True, ""))
    if not acceptable(value):
        raise rc.DatasetError(f"hyperparameter {name}={value!r} {advice}")


def build_estimator(problem_type: str, hp: dict[str, Any]) -> Any:
    """The scikit-learn estimator for the algorithm and problem type."""
    # Imported here so bad hyperparameters or channels fail before scikit-learn's ~2 s import.
    from sklearn.ensemble import (  # noqa: PLC0415
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    classification = rc.is_classification(problem_type)
    depth: dict[str, Any] = {}
    if hp["max-depth"] is not None:
        depth = {"max_depth": hp["max-depth"] or None}  # 0 = unlimited
    if hp["algorithm"] == "random_forest":
        forest = RandomForestClassifier if classification else RandomForestRegressor
        return forest(n_estimators=hp["n-estimators"], random_state=hp["seed"], n_jobs=-1, **depth)
    if hp["algorithm"] == "gradient_boosting":
        boosting = GradientBoostingClassifier if classification else GradientBoostingRegressor
        return boosting(
            n_estimators=hp["n-estimators"],
            learning_rate=hp["learning-rate"],
            random_state=hp["seed"],
            **depth,
        )
    linear = LogisticRegression(max_iter=1000, random_state=hp["seed"]) if classification else Ridge()
    return make_pipeline(StandardScaler(), linear)


def checkpoint_key(hp: dict[str, Any], files: list[Path]) -> str:
    """Hash of the hyperparameters, the library version and the training inputs' bytes."""
    import sklearn  # noqa: PLC0415 - see build_estimator

    digest = hashlib.sha256(json.dumps(hp, sort_keys=True).encode())
    digest.update(sklearn.__version__.encode())
    for path in files:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:24]


def fit_or_resume(estimator: Any, train: Any, classification: bool, checkpoint: Path) -> Any:
    """Reuse ``checkpoint`` when it exists (same key = same inputs), else fit and save it atomically."""
    if checkpoint.is_file():
        print(f"checkpoint: reusing {checkpoint} (same hyperparameters and data); not refitting", flush=True)
        return joblib.load(checkpoint)
    y = train[:, 0].astype(int) if classification else train[:, 0]
    estimator.fit(train[:, 1:], y)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_suffix(".partial")
    joblib.dump(estimator, partial)
    partial.replace(checkpoint)  # a spot interruption mid-write leaves no half checkpoint behind
    print(f"checkpoint: saved {checkpoint}", flush=True)
    return estimator


def channel(name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", f"/opt/ml/input/data/{name}"))


def model_dir() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))


def check_width(data: Any, schema: dict[str, Any], split: str) -> None:
    expected = len(schema["feature_names"]) + 1
    if data.shape[1] != expected:
        raise rc.DatasetError(
            f"{split} split has {data.shape[1]} columns but schema.json names {expected - 1} features plus "
            "the target; the channels come from different preprocessing runs"
        )


def save_model(estimator: Any, schema: dict[str, Any], hp: dict[str, Any], directory: Path) -> None:
    """model.joblib + schema.json + the serving code, so the model.tar.gz is self-contained."""
    code = directory / "code"
    code.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, directory / rc.MODEL_FILE)
    (directory / rc.SCHEMA_FILE).write_text(json.dumps(schema, indent=2), encoding="utf-8")
    (directory / "hyperparameters.json").write_text(json.dumps(hp, sort_keys=True), encoding="utf-8")
    here = Path(__file__).resolve().parent
    for name in CODE_FILES:
        shutil.copyfile(here / name, code / name)


def main(argv: list[str] | None = None) -> None:
    hp = parse_hyperparameters(sys.argv[1:] if argv is None else argv)
    schema = rc.read_schema(channel("schema"))
    train = rc.read_split_csv(channel("train"), "train.csv")
    check_width(train, schema, "train")
    validation_dir = channel("validation")
    validation = rc.read_split_csv(validation_dir, "validation.csv") if validation_dir.is_dir() else None
    if validation is not None:
        check_width(validation, schema, "validation")
    classification = rc.is_classification(schema["problem_type"])
    if classification and len(set(train[:, 0].astype(int))) < 2:
        raise rc.DatasetError("the train split holds a single class: add rows of the other classes")

    inputs = [channel("schema") / rc.SCHEMA_FILE, *sorted(channel("train").rglob("*.csv"))]
    checkpoint = model_dir().parent / "checkpoints" / f"model-{checkpoint_key(hp, inputs)}.joblib"
    print(f"training {hp['algorithm']} for {schema['problem_type']} with {json.dumps(hp, sort_keys=True)}")
    estimator = fit_or_resume(build_estimator(schema["problem_type"], hp), train, classification, checkpoint)

    if validation is None:
        print(f"no validation channel at {validation_dir}: no validation metrics", file=sys.stderr)
    else:
        for name, value in rc.evaluate_estimator(estimator, validation, schema["problem_type"]).items():
            print(f"validation:{name}={value:.6f}", flush=True)
    save_model(estimator, schema, hp, model_dir())


if __name__ == "__main__":
    rc.run_script(main, failure_file=model_dir().parent / "output" / "failure")
