"""The container images the pipeline would use, from the layer's own table (mlops_common.pipeline.images)."""

from __future__ import annotations

from typing import Any

from mlops_cli.errors import CliError

FRAMEWORKS = ("sklearn",)


def image_rows(framework: str | None, region: str | None) -> list[dict[str, Any]]:
    """Every scikit-learn container image the pipeline can use: each region x each listed version."""
    from mlops_common.pipeline import images

    if framework and framework not in FRAMEWORKS:
        raise CliError(f"unknown framework {framework!r}: choose one of {', '.join(FRAMEWORKS)}")
    every = images.all_sklearn_images()
    regions = sorted({image.region for image in every})
    if region and region not in regions:
        raise CliError(
            f"the pipeline has no default image in {region} (regions: {', '.join(regions)}); "
            "set ImageUri or image_uri in pipeline.json there"
        )
    return [
        {
            "framework": "sklearn",
            "region": image.region,
            "version": image.version,
            "default": image.version == images.DEFAULT_SKLEARN_VERSION,
            "repository": images.repository_of(image.uri),
            "tag": images.tag_of(image.uri),
            "imageUri": image.uri,
        }
        for image in every
        if region in (None, image.region)
    ]
