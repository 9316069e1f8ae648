"""How long does each exercise's checker take, once its models are loaded? The README's figure comes from here.

    python benchmarks/checkers.py            # every exercise, the master's solution, three timed runs each

Every check runs once untimed (it loads the models it needs and warms the caches), then three times with the
master's own solution; the script prints each exercise's median time and the slowest. A learner waits this long
after running a `check_*` cell; a check of over a few seconds is worth making cheaper.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.checking import exercises, reference_function, run_check  # noqa: E402


def main() -> None:
    import torch

    torch.set_num_threads(1)
    specs = exercises()
    for exercise_id, spec in specs.items():  # load every model first
        run_check(exercise_id, reference_function(spec))
    medians = {}
    for exercise_id, spec in specs.items():
        times = []
        for _ in range(3):
            start = time.perf_counter()
            passed = run_check(exercise_id, reference_function(spec)).passed
            times.append(time.perf_counter() - start)
            assert passed, exercise_id
        medians[exercise_id] = statistics.median(times)
        print(f"{exercise_id:6s} {medians[exercise_id]:6.2f} s")
    slowest = max(medians, key=medians.get)
    print(f"{len(medians)} checks; median {statistics.median(medians.values()):.2f} s, "
          f"slowest {slowest} {medians[slowest]:.2f} s, all {sum(medians.values()):.1f} s")


if __name__ == "__main__":
    main()
