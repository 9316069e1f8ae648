"""The course as an nbgrader source tree, for instructors who grade with nbgrader (and JupyterHub).

    python -m utils.authoring.release --nbgrader DIR

writes DIR/nbgrader_config.py and DIR/source/NN_name/NN_name.ipynb for every master: the learner's view
of the solved notebook (instructor lines removed, the `### BEGIN SOLUTION` markers nbgrader also uses
kept), with nbgrader's cell metadata:
- each answer cell is a solution cell (grade id `answer-00_1`);
- each check cell is a locked autograder test cell worth the points the master declares (grade id
  `check-00_1`); it runs the checker and fails when the verdict does not pass, because nbgrader scores a
  test cell by whether it raises (the course's own `check` falls back to the reference instead);
- every other cell is locked (read-only), so nbgrader's OverwriteCells restores it from the source.
Then, in DIR: `nbgrader generate_assignment 00_orientation`, release and collect as usual, and
`nbgrader autograde 00_orientation` with COURSE_CHECK_TIER=hidden and COURSE_GRADING_SEED set, in an
environment where the course (with utils/reference/) is installed. Students need the course's student
release (`python -m utils.authoring.release`) installed for `import utils` and the public checkers.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from utils.authoring import build
from utils.grading.masters import ROOT, Master, load_masters

SCHEMA_VERSION = 3
CONFIG = '''c = get_config()  # noqa: F821 (nbgrader's config loader defines it)
c.CourseDirectory.course_id = "attention-course"
c.Execute.timeout = 600  # seconds per cell: nbgrader's 30 s default is shorter than a model load on a slow machine
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
'''
TEST_CELL = '''import os
from utils.checking import run_check

verdict = run_check({exercise_id!r}, {function}, tier=os.environ.get("COURSE_CHECK_TIER", "public"))
print(verdict)
assert verdict.passed, verdict.message'''


def export(destination: Path, root: Path = ROOT) -> list[Path]:
    """Write the nbgrader course folder; the source notebooks written."""
    if destination.exists() and any(destination.iterdir()):
        raise SystemExit(f"{destination} is not empty; give a new folder")
    written = []
    for name, master in load_masters(root).items():
        solved = build.student_notebook(nbformat.read(root / "solutions" / f"{name}.ipynb", as_version=4),
                                        Path("solutions") / f"{name}.ipynb", solved=True)
        path = destination / "source" / name / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbgrader_notebook(solved, master), path)
        written.append(path)
    (destination / "nbgrader_config.py").write_text(CONFIG)
    return written


def nbgrader_notebook(solved: nbformat.NotebookNode, master: Master) -> nbformat.NotebookNode:
    """`solved` (a learner's view of the master, solutions kept) with nbgrader's metadata on every cell."""
    slots = {slot.cell: slot for slot in master.slots}
    checks = {check.cell: check for check in master.checks}
    for index, cell in enumerate(solved.cells):
        if index in checks:
            check = checks[index]
            cell.source = TEST_CELL.format(exercise_id=check.exercise_id, function=check.function)
            cell.metadata["nbgrader"] = _cell_metadata(grade_id("check", check.exercise_id), grade=True, locked=True,
                                                       points=master.points(check.exercise_id))
        elif index in slots:
            cell.metadata["nbgrader"] = _cell_metadata(grade_id("answer", *slots[index].exercise_ids), solution=True)
        else:
            cell.metadata["nbgrader"] = _cell_metadata(f"cell-{index}", locked=True)
    return solved


def grade_id(kind: str, *exercise_ids: str) -> str:
    """nbgrader's id for a cell ("check-00_1"): letters, digits, - and _ only."""
    return "-".join([kind, *(i.replace(".", "_") for i in exercise_ids)])


def _cell_metadata(grade_id: str, grade: bool = False, solution: bool = False, locked: bool = False,
                   points: int | None = None) -> dict:
    metadata = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
                "solution": solution, "task": False}
    if points is not None:
        metadata["points"] = points
    return metadata
