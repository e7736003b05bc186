"""SageMaker scikit-learn image URIs: every version and region the SageMaker Python SDK lists.

Source: the SDK's ``image_uri_config/sklearn.json`` (sagemaker-core, 2026-12): one ECR account per region,
the same for every version; the tag is ``<version>-cpu-py3`` and the host ``<account>.dkr.ecr.<region>.<dns
suffix>`` (the SDK takes the suffix from botocore's endpoint data; a test holds this table equal to it). Any
ECR image can be named instead with ``image_uri`` (template parameter ``ImageUri`` or pipeline.json).
"""

from __future__ import annotations

from dataclasses import dataclass

SKLEARN_REPOSITORY = "sagemaker-scikit-learn"
OFFLINE_REPOSITORIES = ("sagemaker-scikit-learn", "sagemaker-xgboost")
TRAINING, INFERENCE = "training", "inference"


@dataclass(frozen=True)
class SklearnVersion:
    """One scikit-learn container version: where the SDK lists it and what it runs (the container's pins)."""

    version: str
    scopes: tuple[str, ...]
    python: str
    scikit_learn: str

    @property
    def tag(self) -> str:
        return f"{self.version}-cpu-py3"


# Newest first. Scopes from sklearn.json; Python and scikit-learn from the container's Dockerfiles and pins
# (aws/sagemaker-scikit-learn-container). 1.4-2 plain is listed for training only: no endpoint could serve it.
SKLEARN_VERSIONS: tuple[SklearnVersion, ...] = (
    SklearnVersion("1.4-2-py312", (TRAINING, INFERENCE), "3.12", "1.4.2"),
    SklearnVersion("1.4-2", (TRAINING,), "3.10", "1.4.2"),
    SklearnVersion("1.2-1", (TRAINING, INFERENCE), "3.9", "1.2.1"),
    SklearnVersion("1.0-1", (TRAINING, INFERENCE), "3.8", "1.0.2"),
    SklearnVersion("0.23-1", (TRAINING, INFERENCE), "3.7", "0.23.2"),
    SklearnVersion("0.20.0", (TRAINING, INFERENCE), "3.7", "0.20.0"),
)
# The project's Python (Lambda runtime and recipe code): the default image runs the same.
PROJECT_PYTHON = "3.12"

# Region -> the account SageMaker publishes the scikit-learn images from (sklearn.json "registries").
SKLEARN_ACCOUNTS: dict[str, str] = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902",
    "us-iso-east-1": "833128469047",
    "us-isob-east-1": "281123927165",
    "us-isof-east-1": "108575199400",
    "us-isof-south-1": "124985052026",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}

# DNS suffix of ECR by region prefix (partition); everything else is the aws partition's amazonaws.com.
_DNS_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
)


class UnsupportedRegionError(ValueError):
    """No image account is known for the region; the message says how to name an image."""


class UnsupportedVersionError(ValueError):
    """The scikit-learn container version is not one the SDK lists for training and serving."""


def servable_versions() -> tuple[SklearnVersion, ...]:
    """Versions listed for both training and inference (a recipe both trains and serves in one image)."""
    return tuple(v for v in SKLEARN_VERSIONS if TRAINING in v.scopes and INFERENCE in v.scopes)


def default_sklearn_version(python: str = PROJECT_PYTHON) -> SklearnVersion:
    """The newest version listed for training and inference that runs the given Python."""
    for candidate in servable_versions():
        if candidate.python == python:
            return candidate
    raise UnsupportedVersionError(f"no scikit-learn container version runs Python {python}")


DEFAULT_SKLEARN_VERSION = default_sklearn_version().version
SKLEARN_TAG = default_sklearn_version().tag


def sklearn_version(version: str) -> SklearnVersion:
    """A version usable by the recipe (training and serving), or a clear error listing the choices."""
    for candidate in servable_versions():
        if candidate.version == version:
            return candidate
    choices = ", ".join(v.version for v in servable_versions())
    raise UnsupportedVersionError(
        f"scikit-learn container version {version!r} is not listed for both training and inference; "
        f"choose one of: {choices}"
    )


def dns_suffix(region: str) -> str:
    for prefix, suffix in _DNS_SUFFIXES:
        if region.startswith(prefix):
            return suffix
    return "amazonaws.com"


def framework_image(region: str, repository: str = SKLEARN_REPOSITORY, tag: str = SKLEARN_TAG) -> str:
    account = SKLEARN_ACCOUNTS.get(region)
    if account is None:
        raise UnsupportedRegionError(
            f"no {repository} image account known for region {region}; set image_uri in pipeline.json or the "
            f"ImageUri template parameter (known regions: {', '.join(sorted(SKLEARN_ACCOUNTS))})"
        )
    return f"{account}.dkr.ecr.{region}.{dns_suffix(region)}/{repository}:{tag}"


def sklearn_image(region: str, version: str = DEFAULT_SKLEARN_VERSION) -> str:
    return framework_image(region, SKLEARN_REPOSITORY, sklearn_version(version).tag)


def recipe_image(region: str, override: str | None = None, version: str | None = None) -> str:
    """The image the default recipe runs in: the override when given, else the region's scikit-learn image
    of ``version`` (default: DEFAULT_SKLEARN_VERSION)."""
    return override or sklearn_image(region, version or DEFAULT_SKLEARN_VERSION)


@dataclass(frozen=True)
class ImageUri:
    region: str
    version: str
    scopes: tuple[str, ...]
    python: str
    uri: str


def all_sklearn_images() -> list[ImageUri]:
    """Every region x every listed version, sorted by region then newest version first."""
    return [
        ImageUri(region, v.version, v.scopes, v.python, framework_image(region, SKLEARN_REPOSITORY, v.tag))
        for region in sorted(SKLEARN_ACCOUNTS)
        for v in SKLEARN_VERSIONS
    ]


def repository_of(image_uri: str) -> str:
    """The repository name: 'sagemaker-scikit-learn' from '<registry>/sagemaker-scikit-learn:1.2-1'."""
    path = image_uri.split("/", 1)[-1]
    return path.split("@", 1)[0].split(":", 1)[0]


def tag_of(image_uri: str) -> str | None:
    """The tag: '1.4-2-py312-cpu-py3' from '<registry>/sagemaker-scikit-learn:1.4-2-py312-cpu-py3'."""
    last = image_uri.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else None


def sklearn_version_of(image_uri: str) -> str | None:
    """The scikit-learn container version of a scikit-learn image URI ('1.2-1'), else None."""
    tag = tag_of(image_uri)
    if repository_of(image_uri) != SKLEARN_REPOSITORY or not tag:
        return None
    return next(
        (v.version for v in SKLEARN_VERSIONS if tag == v.tag or tag.startswith(v.version + "-cpu")), None
    )
