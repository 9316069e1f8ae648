"""How long does each course model take to load? The figure a workshop cares about when every laptop starts.

    python benchmarks/models.py             # offline, one torch thread, a few seconds

For each shipped model: the first load in this process (it pays for lazy imports and initialisation the
first time any model loads, so the first row is the slowest) and the best of three later loads.
Timings belong here, not in the generated model card, whose numbers must not change from one regeneration
to the next.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from utils.models import course_models, load_model
from utils.zoo.model_card import card_order


def seconds(name: str) -> float:
    start = time.perf_counter()
    load_model(name)
    return time.perf_counter() - start


def main() -> None:
    names = card_order(course_models())
    print(f"{'model':<16}{'first load s':>14}{'later load s (best of 3)':>28}")
    for name in names:
        first = seconds(name)
        later = min(seconds(name) for _ in range(3))
        print(f"{name:<16}{first:>14.2f}{later:>28.2f}")


if __name__ == "__main__":
    main()
