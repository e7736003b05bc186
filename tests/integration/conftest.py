"""Shared by the workflow tests: each module deploys its own embedded stack as its `aws` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults a test injects into its module's stack end with the test, even when it fails."""
    if "aws" not in request.fixturenames:
        yield
        return
    aws = request.getfixturevalue("aws")
    aws.faults.clear()
    yield
    aws.faults.clear()
