"""Image URIs per region and the recipe bundle (content hash, deterministic tarball, upload once)."""

from __future__ import annotations

import io
import tarfile

import pytest

from mlops_common.pipeline import images, recipe_bundle


def test_regional_images_and_overrides():
    assert images.recipe_image("eu-west-1") == (
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
    )
    assert images.recipe_image("eu-west-1", version="1.2-1") == (
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    custom = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:2"
    assert images.recipe_image("eu-west-1", custom) == custom
    assert images.repository_of(custom) == "mine"
    assert images.repository_of(images.recipe_image("us-west-2")) in images.OFFLINE_REPOSITORIES
    with pytest.raises(images.UnsupportedRegionError, match=r"set image_uri in pipeline\.json"):
        images.recipe_image("mars-north-1")
    with pytest.raises(images.UnsupportedVersionError, match=r"choose one of: 1\.4-2-py312, 1\.2-1"):
        images.recipe_image("eu-west-1", version="1.4-2")  # listed for training only: nothing could serve it


def test_the_default_is_the_newest_servable_version_on_the_project_python():
    default = images.default_sklearn_version()
    assert (default.version, default.python, default.scikit_learn) == ("1.4-2-py312", "3.12", "1.4.2")
    assert images.default_sklearn_version("3.9").version == "1.2-1"
    assert [v.version for v in images.servable_versions()][:2] == ["1.4-2-py312", "1.2-1"]
    assert images.sklearn_version_of(images.recipe_image("ap-south-2")) == "1.4-2-py312"
    assert images.sklearn_version_of(images.recipe_image("ap-south-2", version="1.2-1")) == "1.2-1"
    assert (
        images.sklearn_version_of("123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1.2-1-cpu-py3") is None
    )


def test_every_region_the_sdk_lists_with_the_partitions_ecr_host():
    """37 regions in the SDK's sklearn.json (2026-12); hosts as botocore's endpoint data resolves ECR."""
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    assert len(images.SKLEARN_ACCOUNTS) == 37
    listing = images.all_sklearn_images()
    assert len(listing) == 37 * len(images.SKLEARN_VERSIONS)
    for item in listing:
        account = images.SKLEARN_ACCOUNTS[item.region]
        endpoint = resolver.construct_endpoint("ecr", item.region) or {
            "hostname": f"ecr.{item.region}.amazonaws.com"  # the SDK's own fallback for il-central-1
        }
        assert (
            item.uri == f"{account}.dkr.{endpoint['hostname']}/sagemaker-scikit-learn:{item.version}-cpu-py3"
        )
    china = images.recipe_image("cn-north-1")
    assert china.startswith("450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/"), china


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
