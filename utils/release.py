"""Write a student release: the course without its solutions or reference code.

    python -m utils.release DIR

DIR gets README.md, requirements.txt, pyproject.toml, notebooks/, models/ and utils/ minus the
instructor-side modules (INSTRUCTOR_ONLY: the reference solutions and the tools built on them). In its place, utils/expected/nbNN.pt holds the reference's outputs on each exercise's
public cases, so the public checkers work unchanged; the hidden tier needs the instructor's copy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from utils import build, checking

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["README.md", "requirements.txt", "pyproject.toml", "notebooks", "models", "utils"]
# Instructor-side modules: reference solutions, and tools that contain or build on exercise answers
# (the model card's metrics, causal tracing, training recipes). Notebooks never import them.
INSTRUCTOR_ONLY = ["reference", "metrics.py", "causal_trace.py", "model_card.py", "train_lm.py", "train_pointer.py"]
LEFT_OUT = shutil.ignore_patterns(*INSTRUCTOR_ONLY, "expected", "__pycache__", "*.pyc")


def release(destination: Path) -> None:
    """Copy the student-facing tree to `destination` and freeze the public expectations there."""
    if build.build(ROOT, check=True):
        raise SystemExit("generated files are out of date: run `python -m utils.build` first")
    if destination.exists() and any(destination.iterdir()):
        raise SystemExit(f"{destination} is not empty; give a new folder")
    destination.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=LEFT_OUT)
        elif source.exists():
            shutil.copy2(source, destination / name)
    freeze_expected(destination / "utils" / checking.FROZEN_DIR.name)


def freeze_expected(folder: Path) -> None:
    """Save, per notebook, every exercise's reference outputs on its public cases."""
    folder.mkdir(parents=True, exist_ok=True)
    by_notebook: dict[str, dict[str, list]] = {}
    for exercise_id, spec in checking.exercises().items():
        cases = checking.cases_for(spec, "public")
        reference = checking.reference_function(spec)
        by_notebook.setdefault(exercise_id.split(".")[0], {})[exercise_id] = [reference(*case.args) for case in cases]
    for notebook, expected in by_notebook.items():
        torch.save(expected, folder / f"nb{notebook}.pt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("destination", type=Path, help="an empty or new folder")
    release(parser.parse_args(argv).destination)
    return 0


if __name__ == "__main__":
    sys.exit(main())
