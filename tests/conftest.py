"""Fixtures several test files share."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def released(tmp_path_factory) -> Path:
    """A student release of the current checkout (`python -m utils.authoring.release`), built once per session."""
    from utils.authoring import release

    destination = tmp_path_factory.mktemp("release") / "course"
    release.release(destination)
    return destination
