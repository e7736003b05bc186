"""Configuration: template defaults < pipeline.json; every invalid field named in the error."""

from __future__ import annotations

import pytest

from mlops_common.pipeline import data_formats
from mlops_common.pipeline.run_config import InvalidConfigError, defaults_from_env, parse_overrides, resolve


def test_pipeline_json_overrides_template_defaults_which_override_built_ins():
    config = resolve(
        defaults_from_env(
            '{"training_instance_type": "ml.c5.xlarge", "threshold": "", "managed_spot": "true"}'
        ),
        {"target_column": "species", "hyperparameters": {"n_estimators": 50}, "max_runtime_seconds": 600},
    )
    assert config["training_instance_type"] == "ml.c5.xlarge"
    assert config["target_column"] == "species"
    assert config["hyperparameters"] == {"n_estimators": "50"}
    assert config["managed_spot"] is True
    assert config["max_wait_seconds"] == 1200, "spot waits twice the runtime unless told"
    assert config["threshold"] is None
    assert config["approval_mode"] == "auto"
    assert config["sklearn_version"] is None, "the image module's default applies"
    assert resolve({}, {"sklearn_version": "1.2-1"})["sklearn_version"] == "1.2-1"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"target_colum": "label"}, "target_colum"),
        ({"problem_type": "clustering"}, "problem_type"),
        ({"sklearn_version": "1.4-2"}, "sklearn_version"),
        ({"max_runtime_seconds": 10}, "max_runtime_seconds"),
        ({"max_runtime_seconds": "ten"}, "max_runtime_seconds"),
        ({"managed_spot": "yes"}, "managed_spot"),
        ({"threshold": "high"}, "threshold"),
        ({"hyperparameters": {"n_trees": 5}}, "hyperparameters.n_trees"),
        ({"hyperparameters": {"algorithm": "svm"}}, "hyperparameters.algorithm"),
        ({"training_instance_type": "m5.large"}, "training_instance_type"),
        ({"rollout": "canary", "deploy_mode": "instance"}, "rollout"),
        ({"metric": "rmse", "problem_type": "binary_classification"}, "metric"),
        ({"serverless_memory_mb": 1500}, "serverless_memory_mb"),
        ({"managed_spot": True, "max_runtime_seconds": 600, "max_wait_seconds": 300}, "max_wait_seconds"),
        ({"recipe": {"image_uri": "nginx"}}, "recipe"),
        ({"train_fraction": 0.9, "validation_fraction": 0.2}, "validation_fraction"),
    ],
)
def test_each_invalid_field_is_named(overrides: dict, field: str):
    with pytest.raises(InvalidConfigError) as caught:
        resolve({}, overrides)
    assert f"'{field}'" in str(caught.value)


def test_not_json_and_not_an_object_are_explained():
    with pytest.raises(InvalidConfigError, match="not valid JSON"):
        parse_overrides(b"{target_column: label}")
    with pytest.raises(InvalidConfigError, match="JSON object"):
        parse_overrides(b'["label"]')


def test_canary_is_fine_with_enough_instances():
    config = resolve({}, {"deploy_mode": "instance", "rollout": "Canary", "endpoint_instance_count": 2})
    assert config["rollout"] == "canary"


def test_format_detection():
    assert data_formats.detect_format(["training/d/a.csv", "training/d/b.csv.gz"]).data_format == "csv"
    images = data_formats.detect_format(
        ["training/d/cat/1.jpg", "training/d/dog/2.png", "training/d/labels.csv"]
    )
    assert (images.data_format, images.tabular) == ("image", False)
    assert (
        data_formats.detect_format(["training/d/x.txt"], "1 1:0.5 3:1.2\n0 2:0.1\n").data_format == "libsvm"
    )
    assert data_formats.detect_format(["training/d/x.txt"], "hello world\n").data_format == "text"
    with pytest.raises(data_formats.DataFormatError, match="mixes formats"):
        data_formats.detect_format(["training/d/a.csv", "training/d/b.parquet"])
    with pytest.raises(data_formats.DataFormatError, match="supported extension"):
        data_formats.detect_format(["training/d/a.xyz"])
