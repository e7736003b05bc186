"""Which jobs and endpoints run under the container virtualenv, and the per-run overlay over it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from offline.seams import container_runtime

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:{}-cpu-py3"


def _fake_venv(root: Path, version: str) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / container_runtime.VERSION_FILE).write_text(version + "\n")
    return root


def test_only_the_images_own_version_selects_a_container_venv(tmp_path: Path) -> None:
    venvs = {
        "1.4-2-py312": _fake_venv(tmp_path / "py312", "1.4-2-py312"),
        "1.4-2": _fake_venv(tmp_path / "py310", "1.4-2"),
    }
    chosen = container_runtime.for_image(venvs, IMAGE.format("1.4-2-py312"))
    assert chosen is not None and chosen.root == venvs["1.4-2-py312"].resolve()
    assert container_runtime.for_image(venvs, IMAGE.format("1.4-2")).version == "1.4-2"  # type: ignore[union-attr]
    assert container_runtime.for_image(venvs, IMAGE.format("1.2-1")) is None, "no venv for 1.2-1: fast path"
    other = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.4-2-py312-cpu-py3"
    assert container_runtime.for_image(venvs, other) is None


def test_an_unbuilt_venv_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(container_runtime.ContainerVenvError, match="make container-venv"):
        container_runtime.load(tmp_path)
    assert not container_runtime.built(tmp_path)


def test_an_overlay_sees_the_base_packages_and_installs_into_its_own(tmp_path: Path) -> None:
    base = container_runtime.ContainerVenv("test", Path(sys.prefix))  # this venv plays the container's
    python = container_runtime.overlay(base, tmp_path / "overlay")
    probe = subprocess.run(
        [str(python), "-c", "import sys, moto, site; print(sys.prefix); print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert probe[0] == str(tmp_path / "overlay"), "pip installs of the run go to the overlay, not the base"
    assert probe[1].startswith(str(tmp_path / "overlay"))
