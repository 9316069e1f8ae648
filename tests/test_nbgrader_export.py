"""`python -m utils.authoring.release --nbgrader DIR`: an nbgrader course folder that nbgrader itself grades
as the course's own grader does (the round trip skips where nbgrader is not installed; CI installs it)."""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.grading_class import ORIENTATION, WRONG_00, Notebooks
from utils.authoring.nbgrader_export import export, grade_id
from utils.grading.masters import ROOT

SEED = "4242"
STUDENTS = {"alice": ["00.1", "00.2", "00.3", "00.4"], "bob": [], "carol": ["00.1", "00.3"]}  # the correct answers


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nbgrader") / "course"
    export(folder)
    return folder


def test_every_cell_carries_nbgrader_metadata_and_the_points_the_master_declares(course: Path):
    books = Notebooks()
    for name, master in books.masters.items():
        notebook = nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
        metadata = [cell.metadata["nbgrader"] for cell in notebook.cells]
        ids = [m["grade_id"] for m in metadata]
        assert len(set(ids)) == len(ids)
        tests = {m["grade_id"]: m["points"] for m in metadata if m["grade"]}
        assert tests == {grade_id("check", d.id): d.points for d in master.declarations}
        answers = [m for m in metadata if m["solution"]]
        assert len(answers) == len(master.slots) and not any(m["locked"] for m in answers)
        assert all(m["locked"] for m in metadata if not m["solution"])
        for slot in master.slots:
            assert "### BEGIN SOLUTION" in notebook.cells[slot.cell].source
    assert "c.Execute.timeout" in (course / "nbgrader_config.py").read_text()


def submission(released: nbformat.NotebookNode, books: Notebooks, correct: list[str]) -> nbformat.NotebookNode:
    """The released notebook with `correct` answered right and the other answers wrong (00.4) or left as stubs."""
    notebook = copy.deepcopy(released)
    for slot in books.masters[ORIENTATION].slots:
        cell = next(c for c in notebook.cells if c.metadata["nbgrader"]["grade_id"] == grade_id("answer", *slot.exercise_ids))
        (exercise_id,) = slot.exercise_ids
        if exercise_id in correct:
            cell.source = books.solution(ORIENTATION, exercise_id)
        elif exercise_id == "00.4":
            cell.source = WRONG_00["00.4"]
    return notebook


def test_nbgrader_autograde_scores_the_export_as_the_course_grader_does(course: Path, tmp_path: Path):
    pytest.importorskip("nbgrader")
    from nbgrader.api import Gradebook

    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", ORIENTATION, "--force"], cwd=course, check=True, capture_output=True)
    released = nbformat.read(course / "release" / ORIENTATION / f"{ORIENTATION}.ipynb", as_version=4)
    assert "### BEGIN SOLUTION" not in nbformat.writes(released)
    books = Notebooks()
    ours = tmp_path / "submissions"
    ours.mkdir()
    for student, correct in STUDENTS.items():
        notebook = submission(released, books, correct)
        target = course / "submitted" / student / ORIENTATION / f"{ORIENTATION}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(notebook, target)
        nbformat.write(notebook, ours / f"{student}_{ORIENTATION}.ipynb")
    env = {**os.environ, "COURSE_CHECK_TIER": "hidden", "COURSE_GRADING_SEED": SEED}
    subprocess.run([*nbgrader, "autograde", ORIENTATION, "--force"], cwd=course, env=env, check=True, capture_output=True)
    graded = subprocess.run([sys.executable, "-m", "utils.grade", str(ours), "--out", str(tmp_path / "grades.csv"),
                             "--seed", SEED, "--jobs", "2"], cwd=ROOT, capture_output=True, text=True)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    with open(tmp_path / "grades.csv", newline="") as file:
        our_rows = {row["student"]: row for row in csv.DictReader(file)}
    points = {d.id: d.points for d in books.masters[ORIENTATION].declarations}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student, correct in STUDENTS.items():
            theirs = {g.name: g.score for n in gradebook.find_submission(ORIENTATION, student).notebooks for g in n.grades}
            expected = {i: points[i] if i in correct else 0 for i in points}
            assert theirs == {grade_id("check", i): p for i, p in expected.items()}, student
            assert {i: int(our_rows[student][i]) for i in points} == expected, student
