"""Fixtures for the seam tests: moto in-process with the seams installed, and tiny zips built from strings."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from offline import seams
from offline.seams import OfflineState

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/offline-test"
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def make_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def offline_state(tmp_path: Path) -> Iterator[OfflineState]:
    state = OfflineState(work_dir=tmp_path / "offline", max_wait_seconds=0.01)
    seams.install(state)
    try:
        with mock_aws(config=MOTO_CONFIG):
            yield state
    finally:
        seams.uninstall()


@pytest.fixture
def plain_moto() -> Iterator[None]:
    """moto without seams: for the tests that prove each gap still exists in this moto."""
    assert seams.current_state() is None
    with mock_aws(config=MOTO_CONFIG):
        yield


def aws(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def ensure_role() -> None:
    iam = aws("iam")
    try:
        iam.get_role(RoleName="offline-test")
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName="offline-test", AssumeRolePolicyDocument="{}")


def create_function(name: str, files: dict[str, str], **kwargs: Any) -> str:
    ensure_role()
    lam = aws("lambda")
    spec: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": make_zip(files)},
        "Timeout": 30,
    }
    spec.update(kwargs)
    return lam.create_function(**spec)["FunctionArn"]


def invoke(name: str, payload: Any) -> tuple[Any, str | None]:
    response = aws("lambda").invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return json.loads(response["Payload"].read()), response.get("FunctionError")
