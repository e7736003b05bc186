"""The shared layer ships exactly its pinned packages; the AWS SDK is the runtime's, with a stated minimum."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.unit.template.conftest import ROOT

LAYER = ROOT / "layers" / "mlops_common"
# What the python3.12 runtime provides (boto3 and its dependencies): never bundled, or it shadows the
# runtime's compiled copy and every cold start imports it from source.
RUNTIME_SDK = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}


def requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


def sdk_minimum() -> dict[str, Version]:
    """runtime-sdk.txt: `name>=version` for boto3 and botocore."""
    found = {}
    for requirement in requirements(LAYER / "runtime-sdk.txt"):
        (specifier,) = requirement.specifier
        assert specifier.operator == ">=", f"runtime-sdk.txt: {requirement} must be name>=version"
        found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def test_layer_requirements_are_exact_pins_and_leave_out_the_runtime_sdk() -> None:
    pins = requirements(LAYER / "requirements.txt")
    assert pins, "layers/mlops_common/requirements.txt lists nothing"
    loose = [str(r) for r in pins if [s.operator for s in r.specifier] != ["=="]]
    assert loose == [], (
        f"pin these exactly (name==version), the Makefile installs them with --no-deps: {loose}"
    )
    bundled_sdk = {canonicalize_name(r.name) for r in pins} & RUNTIME_SDK
    assert bundled_sdk == set(), (
        f"the python3.12 runtime provides these; remove them from the layer: {bundled_sdk}"
    )


def test_the_dev_venv_runs_the_powertools_the_layer_ships() -> None:
    pinned = {
        canonicalize_name(r.name): next(iter(r.specifier)).version
        for r in requirements(LAYER / "requirements.txt")
    }
    assert metadata.version("aws-lambda-powertools") == pinned["aws-lambda-powertools"]


def test_sdk_minimum_covers_powertools_and_is_what_the_tests_run_and_the_readme_says() -> None:
    minimum = sdk_minimum()
    assert set(minimum) == {"boto3", "botocore"}
    # Powertools declares the lowest boto3 it works with under its aws-sdk extra.
    powertools_boto3 = next(
        Requirement(line)
        for line in metadata.requires("aws-lambda-powertools") or []
        if line.startswith("boto3") and "aws-sdk" in line
    )
    powertools_minimum = max(Version(s.version) for s in powertools_boto3.specifier if s.operator == ">=")
    assert minimum["boto3"] >= powertools_minimum, "Powertools needs a newer boto3 than runtime-sdk.txt says"
    for name, version in minimum.items():
        assert Version(metadata.version(name)) >= version, (
            f"the dev venv's {name} is older than runtime-sdk.txt"
        )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"boto3 ≥ ([0-9.]+) \(botocore ≥ ([0-9.]+)\)", readme)
    assert stated, "README.md must state the SDK minimum as 'boto3 ≥ X (botocore ≥ Y)'"
    assert (Version(stated[1]), Version(stated[2])) == (minimum["boto3"], minimum["botocore"])
