"""Jobs and endpoints under the scikit-learn container's own Python, libraries and toolkits (no Docker).

`make container-venv` builds `.venv-container/` from requirements/container-sklearn-1.4-2.txt (the image's
pins, sagemaker-training, sagemaker-containers) and records which container version it stands for in
`.venv-container/sagemaker-scikit-learn-version`. `OfflineState.container_venvs` maps container versions to
such virtualenvs: a job or endpoint whose image is `sagemaker-scikit-learn:<version>-...` with a virtualenv
for that version runs under it (job_process and the endpoints seam); anything else takes the fast path with
the project's interpreter.

Each job and endpoint gets its own thin virtualenv over the container's (`overlay`): what the toolkits
pip-install for it (the code directory, its requirements.txt) lands there, as it would in a fresh container,
and never changes the shared one.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

VERSION_FILE = "sagemaker-scikit-learn-version"
# The image's training entry (SAGEMAKER_TRAINING_MODULE) lives here, outside the `offline` package.
GLUE_DIR = Path(__file__).resolve().parent.parent / "container"
TRAINING_MODULE = "sklearn_container_glue:main"
# What the image runs as `train`: sagemaker-containers' command (installed last in the image, it replaces
# sagemaker-training's `train` script of the same name).
TRAIN_COMMAND = "from sagemaker_containers.cli.train import main; main()"


class ContainerVenvError(Exception):
    """The container virtualenv is missing or broken; the message says how to build it."""


@dataclass(frozen=True)
class ContainerVenv:
    version: str
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        found = sorted(self.root.glob("lib/python*/site-packages"))
        if not found:
            raise ContainerVenvError(
                f"{self.root} has no site-packages: rebuild it with `make container-venv`"
            )
        return found[0]


def load(root: Path) -> ContainerVenv:
    """The container virtualenv at root, with the version it was built for."""
    root = Path(root).resolve()
    marker = root / VERSION_FILE
    if not marker.is_file() or not (root / "bin" / "python").exists():
        raise ContainerVenvError(f"{root} is not a built container virtualenv: run `make container-venv`")
    return ContainerVenv(marker.read_text().strip(), root)


# Where `make container-venv` builds them (repository root).
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".venv-container"
DEFAULT_TEST_ROOT = DEFAULT_ROOT.with_name(".venv-container-test")


def built(root: Path = DEFAULT_ROOT) -> bool:
    """True when `make container-venv` finished building root."""
    return (root / ".installed").is_file() and (root / VERSION_FILE).is_file()


def from_environment(variable: str = "OFFLINE_CONTAINER_VENV") -> dict[str, Path]:
    """{version: root} for the virtualenv named by the environment variable (none when unset)."""
    value = os.environ.get(variable)
    if not value:
        return {}
    venv = load(Path(value))
    return {venv.version: venv.root}


def for_image(container_venvs: dict[str, Path], image_uri: str) -> ContainerVenv | None:
    """The container virtualenv serving a scikit-learn image's version, if one is configured."""
    last = image_uri.rsplit("/", 1)[-1].split("@", 1)[0]
    repository, _, tag = last.partition(":")
    if repository != "sagemaker-scikit-learn" or not tag:
        return None
    # Longest first: "1.4-2-py312-cpu-py3" is version 1.4-2-py312, not 1.4-2.
    for version in sorted(container_venvs, key=len, reverse=True):
        if tag == version or tag.startswith(f"{version}-cpu"):
            return load(container_venvs[version])
    return None


def overlay(venv: ContainerVenv, target: Path) -> Path:
    """A virtualenv at target over the container's: its own site-packages first, the container's after
    (`site.addsitedir`, so the container's .pth files, e.g. setuptools' distutils shim, apply). Returns its
    python."""
    subprocess.run(
        [str(venv.python), "-m", "venv", "--without-pip", str(target)],
        check=True,
        capture_output=True,
    )
    site = next(target.glob("lib/python*/site-packages"))
    (site / "zz-container.pth").write_text(f"import site; site.addsitedir({str(venv.site_packages)!r})\n")
    return target / "bin" / "python"


def pip_environment() -> dict[str, str]:
    """What the toolkits' `pip install` needs offline beyond the image: build the code directory with the
    container's setuptools instead of fetching one into an isolated build environment. (pip reads the value of
    a `--no-...` switch's variable as the option's own value: "0" turns build isolation off.)"""
    return {"PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
