"""The fitted model: one scikit-learn Pipeline from raw feature values to a prediction.

``build_pipeline`` returns ``Pipeline([("features", ColumnTransformer(...)), ("model", estimator)])``. The
ColumnTransformer is the only place where raw values become numbers, learnt on the training split:

    numeric      median imputation (+ standard scaling for linear models)
    categorical  constant imputation ("(missing)") + one-hot encoding; unseen categories encode to all zeros
    text         TF-IDF of word 1-2-grams and character 2-4-grams (missing text is the empty string)
    image        decode (Pillow), grayscale, resize, pixel intensities + a histogram of gradient orientations

train.py fits it and saves it in model.joblib; evaluate.py and inference.py load it and call it unchanged.
``prepare_frame`` puts raw rows (from a split CSV or a request) into the typed frame the pipeline expects; it
converts types and refuses values it cannot read (a word in a numeric column), it learns nothing.

Runs in SageMaker's scikit-learn containers (1.2-1: Python 3.9, scikit-learn 1.2.1, pandas 1.1.3; 1.4-2-py312:
Python 3.12, scikit-learn 1.4.2): no API newer than those. Functions used inside the pipeline live at module
level so the pickled model finds them (``recipe_pipeline.<name>``) wherever this file sits on sys.path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import recipe_common as rc
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

NUMERIC, CATEGORICAL, TEXT, IMAGE = "numeric", "categorical", "text", "image"
FEATURE_KINDS = (NUMERIC, CATEGORICAL, TEXT, IMAGE)
MISSING_CATEGORY = "(missing)"
# One-hot columns per categorical feature; rarer categories share one "infrequent" column.
MAX_CATEGORIES = 100
MAX_TEXT_FEATURES = 20000
IMAGE_SIZE = 16
ORIENTATION_BINS = 9
IMAGE_CELLS = 4


class RequestError(ValueError):
    """A row the model cannot read; the message names the feature, the value and what to send."""


# ---------------------------------------------------------------- functions the fitted pipeline calls


def as_text(frame: Any) -> Any:
    """One text column (DataFrame or 2-D array) as a 1-D array of strings, missing as ''."""
    values = frame.iloc[:, 0] if hasattr(frame, "iloc") else np.asarray(frame)[:, 0]
    return np.array(["" if rc.is_missing(v) else str(v) for v in values], dtype=object)


class ImageFeatures(BaseEstimator, TransformerMixin):
    """Encoded image bytes -> grayscale ``size`` x ``size`` pixels in [0, 1] plus, per cell of a
    ``cells`` x ``cells`` grid, a histogram of gradient orientations weighted by magnitude (HOG-style)."""

    def __init__(self, size: int = IMAGE_SIZE, cells: int = IMAGE_CELLS, bins: int = ORIENTATION_BINS):
        self.size = size
        self.cells = cells
        self.bins = bins

    def fit(self, x: Any, y: Any = None) -> ImageFeatures:
        return self

    def transform(self, x: Any) -> Any:
        values = x.iloc[:, 0] if hasattr(x, "iloc") else np.asarray(x, dtype=object).reshape(len(x), -1)[:, 0]
        return np.vstack([self._features(pixels(value, self.size)) for value in values])

    def _features(self, image: Any) -> Any:
        gy, gx = np.gradient(image)
        magnitude = np.hypot(gx, gy)
        orientation = np.mod(np.degrees(np.arctan2(gy, gx)), 180.0)  # unsigned, as HOG uses
        step = self.size // self.cells
        histograms = []
        for row in range(self.cells):
            for column in range(self.cells):
                cell = (slice(row * step, (row + 1) * step), slice(column * step, (column + 1) * step))
                histogram, _ = np.histogram(
                    orientation[cell], bins=self.bins, range=(0.0, 180.0), weights=magnitude[cell]
                )
                histograms.append(histogram)
        hog = np.concatenate(histograms)
        norm = np.linalg.norm(hog)
        return np.concatenate([image.ravel(), hog / norm if norm > 0 else hog])

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        pixel_names = [f"pixel_{r}_{c}" for r in range(self.size) for c in range(self.size)]
        cell_names = [
            f"gradient_cell{r}_{c}_bin{b}"
            for r in range(self.cells)
            for c in range(self.cells)
            for b in range(self.bins)
        ]
        return np.array(pixel_names + cell_names, dtype=object)


def pixels(encoded: Any, size: int) -> Any:
    """Decode JPEG/PNG/... bytes into a size x size grayscale float array in [0, 1]."""
    from PIL import Image  # noqa: PLC0415 - Pillow comes from the recipe's requirements.txt

    if not isinstance(encoded, (bytes, bytearray)):
        raise RequestError(f"expected encoded image bytes, got {type(encoded).__name__}")
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            gray = image.convert("L").resize((size, size))
    except Exception as exc:  # Pillow raises several types for a broken or unknown file
        raise RequestError(f"not a readable image ({exc}); send JPEG or PNG bytes") from exc
    return np.asarray(gray, dtype=float) / 255.0


# ---------------------------------------------------------------- building the pipeline


def resolve_algorithm(algorithm: str, kinds: dict[str, str]) -> str:
    """``auto``: a linear model for text and images (many sparse or correlated features), else a forest."""
    if algorithm != "auto":
        return algorithm
    return "linear" if any(kind in (TEXT, IMAGE) for kind in kinds.values()) else "random_forest"


def feature_transformer(kinds: dict[str, str], scale: bool) -> Any:
    """The ColumnTransformer for the feature kinds (see the module docstring)."""
    transformers: list[Any] = []
    numeric = [name for name, kind in kinds.items() if kind == NUMERIC]
    if numeric:
        steps: list[Any] = [SimpleImputer(strategy="median", keep_empty_features=True)]
        if scale:
            steps.append(StandardScaler())
        transformers.append((NUMERIC, make_pipeline(*steps), numeric))
    categorical = [name for name, kind in kinds.items() if kind == CATEGORICAL]
    if categorical:
        transformers.append(
            (
                CATEGORICAL,
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
                    OneHotEncoder(handle_unknown="ignore", max_categories=MAX_CATEGORIES),
                ),
                categorical,
            )
        )
    for name in [name for name, kind in kinds.items() if kind == TEXT]:
        vectorizers = FeatureUnion(
            [
                (
                    "words",
                    TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=MAX_TEXT_FEATURES),
                ),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(2, 4),
                        sublinear_tf=True,
                        max_features=MAX_TEXT_FEATURES,
                    ),
                ),
            ]
        )
        transformers.append(
            (f"text_{name}", make_pipeline(FunctionTransformer(as_text), vectorizers), [name])
        )
    for name in [name for name, kind in kinds.items() if kind == IMAGE]:
        transformers.append((f"image_{name}", make_pipeline(ImageFeatures(), StandardScaler()), [name]))
    return ColumnTransformer(transformers, remainder="drop")


def build_estimator(problem_type: str, algorithm: str, hp: dict[str, Any]) -> Any:
    from sklearn.ensemble import (  # noqa: PLC0415
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415

    classification = rc.is_classification(problem_type)
    depth: dict[str, Any] = {}
    if hp.get("max-depth") is not None:
        depth = {"max_depth": hp["max-depth"] or None}  # 0 = unlimited
    if algorithm == "random_forest":
        forest = RandomForestClassifier if classification else RandomForestRegressor
        return forest(n_estimators=hp["n-estimators"], random_state=hp["seed"], n_jobs=-1, **depth)
    if algorithm == "gradient_boosting":
        boosting = GradientBoostingClassifier if classification else GradientBoostingRegressor
        return boosting(
            n_estimators=hp["n-estimators"],
            learning_rate=hp["learning-rate"],
            random_state=hp["seed"],
            **depth,
        )
    return LogisticRegression(max_iter=2000, random_state=hp["seed"]) if classification else Ridge()


def build_pipeline(schema: dict[str, Any], hp: dict[str, Any]) -> Any:
    """Unfitted Pipeline: the feature ColumnTransformer, then the estimator ``hp['algorithm']`` names."""
    kinds = schema["feature_kinds"]
    algorithm = resolve_algorithm(hp["algorithm"], kinds)
    return Pipeline(
        [
            ("features", feature_transformer(kinds, scale=algorithm == "linear")),
            ("model", build_estimator(schema["problem_type"], algorithm, hp)),
        ]
    )


# ---------------------------------------------------------------- raw rows -> the frame the pipeline reads


def prepare_frame(rows: Any, schema: dict[str, Any], base_dir: Path | None = None) -> Any:
    """Raw rows (a DataFrame with the feature columns, or a list of dicts) -> typed DataFrame.

    Numeric: numbers or number text; missing tokens (``rc.MISSING_TOKENS``) become NaN; anything else is a
    RequestError. Categorical: canonical text (1, 1.0 and "1" are one category), missing NaN. Text: text.
    Image: encoded bytes; a path string is read relative to ``base_dir`` (the split folders).
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    names = schema["feature_names"]
    absent = [name for name in names if name not in frame.columns]
    if absent:
        raise RequestError(f"missing features {absent}; send every feature: {', '.join(names)}")
    kinds = schema["feature_kinds"]
    typed = {}
    for name in names:
        column = frame[name].tolist()
        kind = kinds[name]
        if kind == NUMERIC:
            typed[name] = _numbers(column, name)
        elif kind == CATEGORICAL:
            typed[name] = [np.nan if rc.is_missing(v) else rc.to_text(v) for v in column]
        elif kind == TEXT:
            typed[name] = [None if rc.is_missing(v) else str(v) for v in column]
        else:
            typed[name] = [_image_bytes(v, name, base_dir) for v in column]
    result = pd.DataFrame(typed, columns=names)
    for name in names:
        if kinds[name] == NUMERIC:
            result[name] = result[name].astype(float)
        else:
            result[name] = result[name].astype(object)
    return result


def _numbers(values: list[Any], name: str) -> list[float]:
    numbers = []
    for position, value in enumerate(values, start=1):
        if rc.is_missing(value):
            numbers.append(np.nan)
            continue
        number = rc.to_number(value)
        if number is None:
            raise RequestError(
                f"row {position}, feature {name!r}: {value!r} is not a number; send a number or leave it "
                "empty"
            )
        numbers.append(number)
    return numbers


def _image_bytes(value: Any, name: str, base_dir: Path | None) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and base_dir is not None and value:
        path = base_dir / value
        if not path.is_file():
            raise RequestError(f"feature {name!r}: image file {path} does not exist")
        return path.read_bytes()
    raise RequestError(f"feature {name!r}: expected image bytes, got {type(value).__name__}")


def split_files(directory: Path, preferred_name: str) -> list[Path]:
    path = directory / preferred_name
    if path.is_file():
        return [path]
    return sorted(p for p in directory.rglob("*.csv") if p.is_file() and p.stat().st_size > 0)


def read_split(directory: Path, preferred_name: str, schema: dict[str, Any]) -> Any:
    """A raw split written by preprocess.py (header row, text cells) -> (typed feature frame, targets).

    Targets are label strings for classification and floats for regression.
    """
    files = split_files(directory, preferred_name)
    if not files:
        raise rc.DatasetError(f"no {preferred_name} (or any .csv file) in {directory}")
    parts = [pd.read_csv(f, dtype=str, keep_default_na=False, na_filter=False) for f in files]
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if frame.empty:
        raise rc.DatasetError(f"{', '.join(str(f) for f in files)}: no rows; the split is empty")
    target = schema["target_column"]
    if target not in frame.columns:
        raise rc.DatasetError(
            f"{files[0]} has no target column {target!r} (columns: {', '.join(frame.columns)}); the split "
            "and "
            "schema.json come from different preprocessing runs"
        )
    try:
        x = prepare_frame(frame, schema, base_dir=files[0].parent)
    except RequestError as exc:
        raise rc.DatasetError(
            f"{files[0]}: {exc}; the split and schema.json come from different runs"
        ) from exc
    if rc.is_classification(schema["problem_type"]):
        y = np.array([rc.to_text(v) for v in frame[target]], dtype=object)
    else:
        y = frame[target].astype(float).to_numpy()
    return x, y


def score(pipeline: Any, x: Any, y: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """Predictions and metrics (recipe_common.compute_metrics) of a fitted pipeline on a split.

    Classification also returns the class probabilities (columns in ``classes`` order) when the estimator
    has them; roc_auc scores the second of the sorted class labels as the positive class.
    """
    problem_type = schema["problem_type"]
    predicted = pipeline.predict(x)
    result: dict[str, Any] = {"predicted": predicted, "probabilities": None, "classes": None}
    positive_scores = None
    if rc.is_classification(problem_type):
        predicted = np.array([str(label) for label in predicted], dtype=object)
        result["predicted"] = predicted
        if hasattr(pipeline, "predict_proba"):
            result["probabilities"] = pipeline.predict_proba(x)
            result["classes"] = [str(label) for label in pipeline.classes_]
            labels = schema["class_labels"] or result["classes"]
            if problem_type == rc.BINARY and len(labels) == 2 and labels[1] in result["classes"]:
                positive = labels[1]
                positive_scores = result["probabilities"][:, result["classes"].index(positive)]
                result["metrics"] = rc.compute_metrics(
                    problem_type, list(y == positive), list(predicted == positive), positive_scores
                )
                return result
    result["metrics"] = rc.compute_metrics(problem_type, list(y), list(predicted), None)
    return result


def feature_names(pipeline: Any) -> list[str]:
    """Names of the columns the estimator sees (for importance plots); generic names when unavailable."""
    try:
        return [str(name) for name in pipeline.named_steps["features"].get_feature_names_out()]
    except Exception:  # noqa: BLE001 - a transformer without names must not fail the evaluation
        width = getattr(pipeline.named_steps["model"], "n_features_in_", 0)
        return [f"feature_{i}" for i in range(width)]
