"""Small conveniences for notebooks."""

from __future__ import annotations

import os
from collections.abc import Iterable

from tqdm.auto import tqdm


def progress(iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
    """A progress bar (a widget in Jupyter), silenced when TQDM_DISABLE=1, as in CI.

    tqdm's notebook bar ignores TQDM_DISABLE, and nbval would then compare the bar's text.
    """
    return tqdm(iterable, desc=desc, total=total, disable=os.environ.get("TQDM_DISABLE") == "1")
