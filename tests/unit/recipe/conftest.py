"""Session fixtures: each dataset goes through preprocess -> train -> evaluate once per test session (worker).

Helpers live in recipe_harness.py: a uniquely named module, since several test folders have a conftest.py.
"""

from __future__ import annotations

import pytest
from recipe_harness import Chain, iris_with_category, load_frame, run_chain


@pytest.fixture(scope="session")
def iris_chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return run_chain(
        tmp_path_factory.mktemp("iris"),
        iris_with_category(),
        ("--target-column", "species"),
        ("--n-estimators", "30"),
    )


@pytest.fixture(scope="session")
def diabetes_chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return run_chain(
        tmp_path_factory.mktemp("diabetes"),
        load_frame("diabetes"),
        (),
        ("--algorithm", "gradient_boosting", "--n-estimators", "50", "--max-depth", "3"),
    )
