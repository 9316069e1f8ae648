"""Write a student release: the course without its solutions, reference code or instructor tools.

    python -m utils.authoring.release DIR
    python -m utils.authoring.release --nbgrader DIR   # an nbgrader course folder instead (nbgrader_export.py)

The release is built from an allow-list: README.md (its learner sections only), requirements.txt,
pyproject.toml, notebooks/, models/ and the learner-facing modules of utils/ (LEARNER_UTILS). Anything
else, including a module added later, stays behind unless it is added to the list. In place of the
reference solutions, utils/expected/nbNN.pt holds the reference's outputs on each exercise's public
cases, so the public checkers work unchanged; the hidden tier needs the instructor's copy.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import torch

from utils import checking
from utils.authoring import build

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_FILES = ["requirements.txt", "pyproject.toml"]
SHIPPED_DIRS = ["notebooks", "models"]
# What learners import: models, data, views, checkers. Never instructor code (authoring, zoo,
# analysis) nor generated answers (reference).
LEARNER_UTILS = ["__init__.py", "env.py", "seeds.py", "models.py", "corpus.py", "tokenizer.py", "pointer.py", "viz.py",
                 "polarity.py", "attention_classifiers.py", "ioi.py", "backcopy.py", "probing.py", "facts.py", "tracing.py",
                 "relative_attention.py", "patching.py", "notebook.py", "checking", "exercises"]
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
# README sections between these markers are for instructors and contributors only.
_INSTRUCTOR_SECTION = re.compile(r"<!-- instructor -->.*?<!-- /instructor -->\n?", re.DOTALL)


def release(destination: Path) -> None:
    """Copy the student-facing tree to `destination` and freeze the public expectations there."""
    if build.build(ROOT, check=True):
        raise SystemExit("generated files are out of date: run `python -m utils.authoring.build` first")
    if destination.exists() and any(destination.iterdir()):
        raise SystemExit(f"{destination} is not empty; give a new folder")
    destination.mkdir(parents=True, exist_ok=True)
    (destination / "README.md").write_text(learner_readme((ROOT / "README.md").read_text()))
    for name in SHIPPED_FILES:
        shutil.copy2(ROOT / name, destination / name)
    for name in SHIPPED_DIRS:
        shutil.copytree(ROOT / name, destination / name, ignore=JUNK)
    for name in LEARNER_UTILS:
        source, target = ROOT / "utils" / name, destination / "utils" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=JUNK)
        else:
            shutil.copy2(source, target)
    freeze_expected(destination / "utils" / checking.FROZEN_DIR.name)


def learner_readme(readme: str) -> str:
    """The README without its instructor and contributor sections."""
    return _INSTRUCTOR_SECTION.sub("", readme)


def freeze_expected(folder: Path) -> None:
    """Save, per notebook, every exercise's reference outputs on its public cases."""
    folder.mkdir(parents=True, exist_ok=True)
    by_notebook: dict[str, dict[str, list]] = {}
    for exercise_id, spec in checking.exercises().items():
        by_notebook.setdefault(exercise_id.split(".")[0], {})[exercise_id] = checking.reference_outputs(spec)
    for notebook, expected in by_notebook.items():
        torch.save(expected, folder / f"nb{notebook}.pt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.authoring.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("destination", type=Path, help="an empty or new folder")
    parser.add_argument("--nbgrader", action="store_true",
                        help="write an nbgrader course folder instead (utils/authoring/nbgrader_export.py)")
    args = parser.parse_args(argv)
    if args.nbgrader:
        from utils.authoring import nbgrader_export

        nbgrader_export.export(args.destination)
    else:
        release(args.destination)
    return 0


if __name__ == "__main__":
    sys.exit(main())
