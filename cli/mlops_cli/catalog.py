"""The container images the pipeline would use, from the layer's own table (mlops_common.pipeline.images)."""

from __future__ import annotations

from typing import Any

from mlops_cli.errors import CliError


def frameworks() -> dict[str, tuple[str, str]]:
    """Framework name -> (ECR repository, tag), as the pipeline names them."""
    from mlops_common.pipeline import images

    return {
        "sklearn": ("sagemaker-scikit-learn", images.SKLEARN_TAG),
        "xgboost": ("sagemaker-xgboost", images.XGBOOST_TAG),
    }


def image_rows(framework: str | None, region: str | None) -> list[dict[str, Any]]:
    from mlops_common.pipeline import images

    known = frameworks()
    if framework and framework not in known:
        raise CliError(f"unknown framework {framework!r}: choose one of {', '.join(known)}")
    regions = sorted(images.FRAMEWORK_ACCOUNTS)
    if region:
        if region not in images.FRAMEWORK_ACCOUNTS:
            raise CliError(
                f"the pipeline has no default image in {region} (regions: {', '.join(regions)}); "
                "set ImageUri or image_uri in pipeline.json there"
            )
        regions = [region]
    return [
        {
            "framework": name,
            "region": each,
            "repository": repository,
            "tag": tag,
            "imageUri": images.framework_image(each, repository, tag),
        }
        for name, (repository, tag) in known.items()
        if framework in (None, name)
        for each in regions
    ]
