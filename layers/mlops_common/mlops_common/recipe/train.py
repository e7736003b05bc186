"""Training job (SageMaker script mode): fit one scikit-learn pipeline on the raw training split.

SageMaker conventions (the training toolkit sets these; the offline job runner sets the same):

    SM_CHANNEL_TRAIN       dir with train.csv       (header row, raw values, target included; preprocess.py)
    SM_CHANNEL_VALIDATION  dir with validation.csv  (same layout; metrics printed for MetricDefinitions)
    SM_CHANNEL_SCHEMA      dir with schema.json
    SM_MODEL_DIR           /opt/ml/model: model.joblib (the fitted Pipeline: feature ColumnTransformer +
                           estimator, see recipe_pipeline.py), schema.json, hyperparameters.json, code/
    <root> = parent of SM_MODEL_DIR (/opt/ml):
        <root>/output/failure  the failure reason (SageMaker shows it as FailureReason); exit code non-zero
        <root>/checkpoints     a model fitted with the same hyperparameters and data is reused, not refitted
                               (managed spot training restores this folder when a job resumes)

Hyperparameters arrive as ``--name value``: --algorithm auto|random_forest|gradient_boosting|linear (auto:
linear for text or image features, else random_forest), --n-estimators, --max-depth (0 = unlimited; unset =
the algorithm's default), --learning-rate, --seed. Values may be JSON-encoded strings (``"\\"linear\\""``)
as the SageMaker SDK writes them. ``sagemaker_*`` entries are the toolkit's own and are ignored. Output: one
``validation:<metric>=<value>`` line per metric.
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

ALGORITHMS = ("auto", "random_forest", "gradient_boosting", "linear")
# name -> (parser, default); names are spelled with hyphens, underscores are accepted too.
HYPERPARAMETERS: dict[str, tuple[Any, Any]] = {
    "algorithm": (str, "auto"),
    "n-estimators": (int, 100),
    "max-depth": (int, None),
    "learning-rate": (float, 0.1),
    "seed": (int, 42),
}
CODE_FILES = ("inference.py", "recipe_common.py", "recipe_pipeline.py", "requirements.txt")


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


def checkpoint_key(hp: dict[str, Any], files: list[Path]) -> str:
    """Hash of the hyperparameters, the library version and the training inputs' bytes."""
    import sklearn  # noqa: PLC0415 - not before the arguments are checked

    digest = hashlib.sha256(json.dumps(hp, sort_keys=True).encode())
    digest.update(sklearn.__version__.encode())
    for path in files:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:24]


def fit_or_resume(pipeline: Any, x: Any, y: Any, checkpoint: Path) -> Any:
    """Reuse ``checkpoint`` when it exists (same key = same inputs), else fit and save it atomically."""
    if checkpoint.is_file():
        print(f"checkpoint: reusing {checkpoint} (same hyperparameters and data); not refitting", flush=True)
        return joblib.load(checkpoint)
    pipeline.fit(x, y)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_suffix(".partial")
    joblib.dump(pipeline, partial)
    partial.replace(checkpoint)  # a spot interruption mid-write leaves no half checkpoint behind
    print(f"checkpoint: saved {checkpoint}", flush=True)
    return pipeline


def channel(name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", f"/opt/ml/input/data/{name}"))


def model_dir() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))


def save_model(pipeline: Any, schema: dict[str, Any], hp: dict[str, Any], directory: Path) -> None:
    """model.joblib (the fitted pipeline) + schema.json + the serving code: a self-contained model.tar.gz."""
    code = directory / "code"
    code.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, directory / rc.MODEL_FILE)
    (directory / rc.SCHEMA_FILE).write_text(json.dumps(schema, indent=2), encoding="utf-8")
    (directory / "hyperparameters.json").write_text(json.dumps(hp, sort_keys=True), encoding="utf-8")
    here = Path(__file__).resolve().parent
    for name in CODE_FILES:
        shutil.copyfile(here / name, code / name)


def main(argv: list[str] | None = None) -> None:
    hp = parse_hyperparameters(sys.argv[1:] if argv is None else argv)
    schema = rc.read_schema(channel("schema"))
    if "image" in schema.get("feature_kinds", {}).values():
        rc.ensure_requirements("PIL")
    # scikit-learn and the pipeline module load only now: bad hyperparameters fail before their import.
    import recipe_pipeline as rp  # noqa: PLC0415

    x, y = rp.read_split(channel("train"), "train.csv", schema)
    validation_dir = channel("validation")
    validation = rp.read_split(validation_dir, "validation.csv", schema) if validation_dir.is_dir() else None
    if rc.is_classification(schema["problem_type"]) and len(set(y)) < 2:
        raise rc.DatasetError("the train split holds a single class: add rows of the other classes")

    inputs = [
        channel("schema") / rc.SCHEMA_FILE,
        *sorted(p for p in channel("train").rglob("*") if p.is_file()),
    ]
    checkpoint = model_dir().parent / "checkpoints" / f"model-{checkpoint_key(hp, inputs)}.joblib"
    hp["algorithm"] = rp.resolve_algorithm(hp["algorithm"], schema["feature_kinds"])
    print(f"training {hp['algorithm']} for {schema['problem_type']} with {json.dumps(hp, sort_keys=True)}")
    pipeline = fit_or_resume(rp.build_pipeline(schema, hp), x, y, checkpoint)

    if validation is None:
        print(f"no validation channel at {validation_dir}: no validation metrics", file=sys.stderr)
    else:
        metrics = rp.score(pipeline, validation[0], validation[1], schema)["metrics"]
        for name, value in metrics.items():
            print(f"validation:{name}={value:.6f}", flush=True)
    save_model(pipeline, schema, hp, model_dir())


if __name__ == "__main__":
    rc.run_script(main, failure_file=model_dir().parent / "output" / "failure")
