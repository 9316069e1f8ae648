"""Test environment and tiers.

The environment (one torch thread, offline, no progress bars; utils/env.py) is set before any kernel
starts, so nbval's kernels inherit it. Every test gets one tier marker, chosen by where it lives:

    python -m pytest -m unit        # about a minute: pure functions, checkers and their known-wrong implementations
    python -m pytest -m notebooks   # generation and release, nbval, learner runs, GPT-2 shapes, portability
    python -m pytest -m models      # acceptance bars on the committed weights
    python -m pytest -m browser     # headless Chromium renders the offline views (skips without chromium)
"""

from pathlib import Path

import pytest

from utils.env import apply_ci_env

apply_ci_env()

TIERS = {"unit", "notebooks", "models", "browser"}
_FILE_TIERS = {"test_model_acceptance.py": "models", "test_browser.py": "browser", "test_notebooks.py": "notebooks",
               "test_learner_runs.py": "notebooks", "test_portability.py": "notebooks", "test_build.py": "notebooks",
               "test_release.py": "notebooks", "test_grade.py": "notebooks",
               "test_nbgrader_export.py": "notebooks"}


def pytest_configure(config: pytest.Config) -> None:
    for tier in sorted(TIERS):
        config.addinivalue_line("markers", f"{tier}: the {tier} test tier (see conftest.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        tier = "notebooks" if path.suffix == ".ipynb" else _FILE_TIERS.get(path.name, "unit")
        item.add_marker(getattr(pytest.mark, tier))
