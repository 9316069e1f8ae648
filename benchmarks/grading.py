"""How many submissions a minute does `python -m utils.grade` grade? A class of correct notebook 00 submissions.

    python benchmarks/grading.py                 # 30 submissions, --jobs 1 and --jobs 2
    python benchmarks/grading.py --class-size 60 --jobs 2

Each submission is the released notebook 00 with every answer correct (the master's solutions), made
distinct by a comment, so none is a copy of another. Every run grades the class from scratch (a fresh
output folder, so nothing resumes) with the default limits, and reports the wall time from the command's
start to its end (the warm process's start-up included) and the steady rate, from the first graded row
to the last. The figure in the README comes from here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from tests.grading_class import ORIENTATION, Notebooks, with_comment  # noqa: E402

SEED = "20261201"


def write_class(folder: Path, size: int) -> None:
    books = Notebooks()
    for k in range(size):
        notebook = with_comment(books.correct(ORIENTATION), f"student {k}")
        (folder / f"student{k:03d}_{ORIENTATION}.ipynb").write_text(nbformat.writes(notebook))


def time_grading(folder: Path, jobs: int) -> tuple[float, float, int]:
    """(seconds from start to end, seconds from the first graded row to the last, rows graded)."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "utils.grade", str(folder), "--out", f"{out}/grades.csv", "--jobs", str(jobs),
                   "--seed", SEED]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        rows = [time.perf_counter() for line in process.stdout if line.split(" ", 1)[0].count("/") == 1]
        if process.wait() != 0:
            raise SystemExit(f"the grader failed (exit {process.returncode})")
        return time.perf_counter() - start, rows[-1] - rows[0], len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--class-size", type=int, default=30)
    parser.add_argument("--jobs", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args()
    print(f"cpu_count={os.cpu_count()}  load average before: {os.getloadavg()[0]:.2f}  "
          f"class: {args.class_size} correct {ORIENTATION} submissions")
    print(f"{'jobs':>4}{'total s':>9}{'per minute':>12}{'steady per minute':>19}")
    with tempfile.TemporaryDirectory() as folder:
        write_class(Path(folder), args.class_size)
        for jobs in args.jobs:
            total, steady, rows = time_grading(Path(folder), jobs)
            print(f"{jobs:>4}{total:>9.1f}{rows / total * 60:>12.1f}{(rows - 1) / steady * 60:>19.1f}", flush=True)


if __name__ == "__main__":
    main()
