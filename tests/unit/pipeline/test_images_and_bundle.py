"""Image URIs per region and the recipe bundle (content hash, deterministic tarball, upload once)."""

from __future__ import annotations

import io
import tarfile

import pytest

from mlops_common.pipeline import images, recipe_bundle


def test_regional_images_and_overrides():
    assert images.recipe_image("eu-west-1") == (
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    custom = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:2"
    assert images.recipe_image("eu-west-1", custom) == custom
    assert images.repository_of(custom) == "mine"
    assert images.repository_of(images.recipe_image("us-west-2")) in images.OFFLINE_REPOSITORIES
    with pytest.raises(images.UnsupportedRegionError, match=r"set image_uri in pipeline\.json"):
        images.recipe_image("mars-north-1")


def test_the_bundle_is_deterministic_and_hash_named_by_content():
    files = {"train.py": b"print(1)\n", "recipe_common.py": b"X = 1\n"}
    assert recipe_bundle.tarball(files) == recipe_bundle.tarball(dict(reversed(files.items())))
    assert recipe_bundle.content_hash(files) != recipe_bundle.content_hash(
        {**files, "train.py": b"print(2)\n"}
    )
    with tarfile.open(fileobj=io.BytesIO(recipe_bundle.tarball(files))) as tar:
        assert sorted(tar.getnames()) == ["recipe_common.py", "train.py"]


def test_the_layer_ships_the_recipe_without_caches():
    files = recipe_bundle.local_files()
    assert {"preprocess.py", "train.py", "evaluate.py", "inference.py", "recipe_common.py"} <= set(files)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in files)


def test_changed_code_is_uploaded_to_a_new_prefix(stack):
    first = recipe_bundle.ensure_uploaded(stack.s3, stack.models_bucket, {"train.py": b"a"})
    again = recipe_bundle.ensure_uploaded(stack.s3, stack.models_bucket, {"train.py": b"a"})
    changed = recipe_bundle.ensure_uploaded(stack.s3, stack.models_bucket, {"train.py": b"b"})
    assert (first.uploaded, again.uploaded, changed.uploaded) == (True, False, True)
    assert first.sourcedir_uri == again.sourcedir_uri != changed.sourcedir_uri
