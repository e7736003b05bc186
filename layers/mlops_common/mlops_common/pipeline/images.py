"""SageMaker framework image URIs per region (the accounts SageMaker publishes them from).

Source: the SageMaker Python SDK's image_uri_config/sklearn.json and xgboost.json; any ECR image can be named
instead with ``image_uri`` (template parameter or pipeline.json).
"""

from __future__ import annotations

SKLEARN_TAG = "1.2-1-cpu-py3"
XGBOOST_TAG = "1.7-1"
# Regions listed here resolve without configuration; the scikit-learn and XGBoost images share these accounts.
FRAMEWORK_ACCOUNTS: dict[str, str] = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
    "ca-central-1": "341280168497",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-central-1": "492215442770",
    "eu-north-1": "662702820516",
    "ap-south-1": "720646828776",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
}
OFFLINE_REPOSITORIES = ("sagemaker-scikit-learn", "sagemaker-xgboost")


class UnsupportedRegionError(ValueError):
    """No image account is known for the region; the message says how to name an image."""


def framework_image(region: str, repository: str = "sagemaker-scikit-learn", tag: str = SKLEARN_TAG) -> str:
    account = FRAMEWORK_ACCOUNTS.get(region)
    if account is None:
        raise UnsupportedRegionError(
            f"no {repository} image account known for region {region}; set image_uri in pipeline.json or the "
            f"ImageUri template parameter (known regions: {', '.join(sorted(FRAMEWORK_ACCOUNTS))})"
        )
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"


def recipe_image(region: str, override: str | None = None) -> str:
    """The image the default recipe runs in: the override when given, else the region's scikit-learn image."""
    return override or framework_image(region)


def repository_of(image_uri: str) -> str:
    """The repository name: 'sagemaker-scikit-learn' from '<registry>/sagemaker-scikit-learn:1.2-1'."""
    path = image_uri.split("/", 1)[-1]
    return path.split("@", 1)[0].split(":", 1)[0]
