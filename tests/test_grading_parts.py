"""The grading command's pure parts: cell restoration, the flag scan, scoring, the results store, the sandbox's rules.

The whole command, on a generated class, is tests/test_grade.py.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import nbformat
import pytest

from tests.grading_class import ORIENTATION, PATTERNS, WRONG_00, Notebooks
from utils.grading import restore
from utils.grading.guard import Policy, Watched
from utils.grading.masters import ROOT
from utils.grading.results import ResultStore, Row, not_graded, result_key, score, write_csv
from utils.grading.runner import job_paths, sealed
from utils.grading.scan import scan


@pytest.fixture(scope="module")
def books() -> Notebooks:
    return Notebooks()


@pytest.fixture(scope="module")
def master(books: Notebooks):
    return books.masters[ORIENTATION]


def _answers(books: Notebooks, notebook: nbformat.NotebookNode) -> tuple[dict[str, str], list[str]]:
    """The learner code restore finds, by exercise id, and its notes."""
    master = books.masters[ORIENTATION]
    answers, notes = restore.find_answers(notebook, master)
    return {i: answers[s.cell] for s in master.slots for i in s.exercise_ids if s.cell in answers}, notes


# --- restoring cells --------------------------------------------------------------------------------
def test_answers_are_found_whatever_the_cell_order(books: Notebooks, master):
    notebook = books.correct(ORIENTATION)
    random.Random(1).shuffle(notebook.cells)
    found, notes = _answers(books, notebook)
    assert found == {d.id: books.solution(ORIENTATION, d.id) for d in master.declarations}
    assert notes == []


def test_answers_without_metadata_are_found_by_their_function(books: Notebooks):
    notebook = books.correct(ORIENTATION)
    for cell in notebook.cells:
        cell.metadata.pop("exercise", None)
    found, _ = _answers(books, notebook)
    assert found["00.2"] == books.solution(ORIENTATION, "00.2")


def test_a_deleted_answer_keeps_the_masters_stub_and_says_so(books: Notebooks):
    notebook = books.correct(ORIENTATION)
    del notebook.cells[books.slot(ORIENTATION, "00.3")]
    found, notes = _answers(books, notebook)
    assert "00.3" not in found and notes == ["00.3: no answer cell found; the master's stub was run"]
    steps = restore.plan(books.masters[ORIENTATION], restore.find_answers(notebook, books.masters[ORIENTATION])[0])
    stub = next(s for s in steps if s["cell"] == books.slot(ORIENTATION, "00.3"))
    assert "raise NotImplementedError()" in stub["source"]


def test_of_duplicated_answers_the_last_counts(books: Notebooks):
    notebook = books.correct(ORIENTATION)
    draft = copy.deepcopy(notebook.cells[books.slot(ORIENTATION, "00.2")])
    draft.source = WRONG_00["00.2"]
    notebook.cells.append(draft)
    found, notes = _answers(books, notebook)
    assert found["00.2"] == WRONG_00["00.2"]
    assert "2 cells define attention_pattern: the last one was graded" in notes


def test_a_renamed_function_runs_the_cell_its_metadata_marks(books: Notebooks):
    renamed = books.solution(ORIENTATION, "00.1").replace("def per_token_loss(", "def my_loss(")
    found, _ = _answers(books, books.with_answers(ORIENTATION, {"00.1": renamed}))
    assert found["00.1"] == renamed


def test_cells_the_learner_added_or_edited_are_replaced_by_the_masters(books: Notebooks, master):
    notebook = books.correct(ORIENTATION)
    notebook.cells.insert(2, nbformat.v4.new_code_cell("check = lambda exercise_id, fn: fn"))
    first_code = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
    notebook.cells[first_code].source = "import os"
    answers, notes = restore.find_answers(notebook, master)
    steps = restore.plan(master, answers)
    assert all("lambda exercise_id" not in s.get("source", "") for s in steps)
    assert steps[0]["source"] == master.student.cells[steps[0]["cell"]].source
    assert any("2 other code cell(s) of yours were replaced" in note for note in notes)


@pytest.mark.parametrize(("source", "is_check"), [
    ('attention_pattern = check("00.2", attention_pattern)', True),
    ('attention_pattern = check("00.2", attention_pattern)  # passes now!', True),
    ("# a note\nattention_pattern=check( '00.2' ,attention_pattern )\n", True),
    ('check("00.2", attention_pattern)', True),
    ('def attention_pattern(q, k):\n    return q\n\nattention_pattern = check("00.2", attention_pattern)', False),
    ('attention_pattern = check(attention_pattern)', False),
    ('attention_pattern = check("00.2", attention_pattern', False),
])
def test_a_check_cell_is_known_however_the_learner_spaced_or_commented_it(source: str, is_check: bool):
    assert restore.is_check_cell(source) is is_check


def test_check_cells_become_check_steps_and_the_plan_ends_at_the_last_one(master):
    steps = restore.plan(master, {})
    checks = [s for s in steps if s["kind"] == "check"]
    assert [s["exercise"] for s in checks] == [d.id for d in master.declarations]
    assert all("source" not in s for s in checks) and steps[-1] is checks[-1]
    assert checks[0] == {"cell": master.checks[0].cell, "kind": "check", "exercise": "00.1", "function": "per_token_loss",
                         "target": "per_token_loss", "label": "the check of 00.1"}


@pytest.mark.parametrize("data, reason", [
    (b"", "not valid JSON"), (b'{"cells": [', "not valid JSON"), (b"\xff\xfe\x00", "not valid JSON"),
    (b'{"hello": 1}', "not a notebook: the JSON has no cells"), (b"[1, 2]", "not a notebook: the JSON has no cells"),
    (b'{"cells": [], "nbformat": 99, "nbformat_minor": 0, "metadata": {}}', "not a notebook nbformat can read"),
])
def test_unreadable_files_say_why(data: bytes, reason: str):
    with pytest.raises(restore.NotGradable, match=reason):
        restore.read_notebook(data)


def test_an_older_nbformat_is_converted(books: Notebooks):
    old = nbformat.writes(nbformat.convert(books.correct(ORIENTATION), 3)).encode()
    notebook = restore.read_notebook(old)
    assert notebook.nbformat == 4 and _answers(books, notebook)[0]["00.4"] == books.solution(ORIENTATION, "00.4")


def test_a_notebook_is_identified_by_source_then_exercise_ids_then_functions(books: Notebooks):
    masters = books.masters
    notebook = books.released(PATTERNS)
    assert restore.identify(notebook, masters).name == PATTERNS
    del notebook.metadata["course"]
    assert restore.identify(notebook, masters).name == PATTERNS
    for cell in notebook.cells:
        cell.metadata.pop("exercise", None)
    assert restore.identify(notebook, masters).name == PATTERNS
    assert restore.identify(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), masters) is None


@pytest.mark.parametrize("path, notebook, student", [
    ("alice_00_orientation.ipynb", ORIENTATION, "alice"), ("00_orientation/bob.ipynb", ORIENTATION, "bob"),
    ("carol/00_orientation.ipynb", ORIENTATION, "carol"), ("dave.ipynb", None, "dave"),
    ("erin-01_attention_patterns.ipynb", PATTERNS, "erin"),
])
def test_the_notebook_and_student_come_from_the_path(books: Notebooks, path: str, notebook: str | None, student: str):
    expected = restore.expected_master(Path(path), books.masters)
    assert (expected.name if expected else None) == notebook
    assert restore.student_id(Path(path), expected) == student


# --- the flag scan ----------------------------------------------------------------------------------
@pytest.mark.parametrize("code, flags", [
    ("check = lambda i, f: f", {"redefines_check"}),
    ("def run_check(*a):\n    pass", {"redefines_check"}),
    ("from utils.checking import run_check as check", {"redefines_check"}),
    ("from utils.reference.nb00 import per_token_loss", {"imports_reference"}),
    ("import utils.checking as c\nf = c.reference('00.1')", {"imports_reference"}),
    ("torch.allclose = lambda *a, **k: True", {"patches_checker"}),
    ("setattr(torch, 'equal', lambda *a: True)", {"patches_checker"}),
    ("import utils.checking.judge as judge\njudge._judge = print", {"patches_checker"}),
    ("seed = os.environ['COURSE_GRADING_SEED']", {"reads_seed", "reads_environment"}),
    ("open('/proc/self/environ').read()", {"reads_seed"}),
    ("x = os.getenv('HOME')", {"reads_environment"}),
    ("path = 'COURSE_CHECK_LOG'", {"touches_verdict_log"}),
    ("f = sys._getframe(1).f_back.f_locals", {"introspection"}),
    ("g = per_token_loss.__globals__", {"introspection"}),
    ("m = sys.modules['utils.reference.nb00']", {"introspection", "imports_reference"}),
    ("exec('x = 1')", {"introspection"}),
    ("import socket", {"network"}),
    ("from urllib.request import urlopen", {"network"}),
    ("import subprocess", {"subprocess"}),
    ("os.system('ls')", {"subprocess"}),
    ("!ls", {"subprocess"}),
    ("def check(:\n  pass", {"redefines_check"}),  # not valid Python: read as text
    ("def per_token_loss(logits, tokens):\n    return -logits.log_softmax(-1)", set()),
])
def test_the_scan_flags_what_the_code_tries(code: str, flags: set[str]):
    assert {flag.name for flag in scan(code)} == flags


def test_the_scan_says_where(books: Notebooks):
    (flag,) = scan("x = 1\ncheck = print\n")
    assert flag.evidence == "line 2: check = print" and flag.source == "static"


def test_no_solution_of_the_course_raises_a_flag(books: Notebooks):
    for name, master in books.masters.items():
        for slot in master.slots:
            code = books.solved[name].cells[slot.cell].source
            assert scan(code) == [], (name, slot.exercise_ids, scan(code))


# --- scoring ----------------------------------------------------------------------------------------
def _finished_job(tmp_path: Path, steps: list[dict], journal: list[dict], verdicts: dict[str, list[dict]]) -> dict:
    paths = job_paths(tmp_path)
    paths["verdicts"].mkdir(parents=True)
    paths["journal"].write_text("".join(json.dumps(r) + "\n" for r in journal) + '{"cell": 99, "ev')  # cut short
    for exercise_id, lines in verdicts.items():
        (paths["verdicts"] / f"{exercise_id}.jsonl").write_text("".join(json.dumps(v) + "\n" for v in lines))
    paths["evidence"].write_text(json.dumps({"flag": "network", "evidence": "socket.connect"}) + "\n")
    return paths


def _ran(steps: list[dict], upto: int | None = None, **extra_by_cell) -> list[dict]:
    journal = []
    for step in steps[:upto]:
        journal.append({"cell": step["cell"], "event": "start"})
        journal.append({"cell": step["cell"], "event": "end", **extra_by_cell.get(f"c{step['cell']}", {})})
    return journal


def _verdict(exercise_id: str, passed: bool) -> dict:
    return {"exercise_id": exercise_id, "passed": passed, "message": f"{exercise_id} {'passed' if passed else 'failed'}",
            "n_cases": 3}


def test_points_come_from_the_logged_verdicts(tmp_path: Path, master):
    steps = restore.plan(master, {})
    checks = {s["exercise"]: s["cell"] for s in steps if s["kind"] == "check"}
    journal = _ran(steps, **{f"c{checks['00.3']}": {"missing": True},
                             f"c{checks['00.2']}": {"void": ""}})  # the journal has no say in voiding
    void = {"exercise_id": "00.4", "void": "torch.allclose changed during the check"}
    verdicts = {"00.1": [_verdict("00.1", False), _verdict("00.1", True)],  # the last one counts
                "00.2": [_verdict("00.2", False), _verdict("00.1", True)],  # another exercise's line does not
                "00.4": [_verdict("00.4", True), void]}
    result = score(master, steps, _finished_job(tmp_path, steps, journal, verdicts), {"exit": 0, "seconds": 3.0}, 60, 600)
    assert [e.points for e in result.exercises] == [1, 0, 0, 0]
    assert result.status == "graded" and result.reason == "" and result.max_points == 6
    assert result.exercises[2].verdict.startswith("no verdict: no function named `residual_at`")
    assert result.exercises[3].verdict == "not counted: torch.allclose changed during the check"
    assert [(f.name, f.source) for f in result.flags] == [("network", "runtime")]


def test_a_run_that_stopped_scores_what_it_checked_and_says_where(tmp_path: Path, master):
    steps = restore.plan(master, {})
    second_check = [s for s in steps if s["kind"] == "check"][1]
    upto = steps.index(second_check) + 1
    journal = _ran(steps, upto)[:-1]  # started, never ended
    verdicts = {"00.1": [_verdict("00.1", True)], "00.2": [_verdict("00.2", True)]}
    result = score(master, steps, _finished_job(tmp_path, steps, journal, verdicts),
                   {"exit": None, "signal": None, "timed_out": True}, 60, 600)
    assert result.status == "incomplete" and [e.points for e in result.exercises] == [1, 0, 0, 0]
    assert result.reason == f"timed out after 60 s in cell {second_check['cell']} (the check of 00.2)"
    assert result.exercises[3].verdict.startswith("no verdict: the notebook stopped before this check (timed out")


def test_not_graded_rows_keep_the_notebooks_exercises_at_zero(master):
    result = not_graded(master.name, "not valid JSON", master)
    assert result.total == 0 and result.max_points == master.max_points and result.status == "not graded"


# --- the results store ------------------------------------------------------------------------------
def test_the_store_survives_a_line_cut_short_and_reloads(tmp_path: Path, master):
    store = ResultStore(tmp_path / "grades.results.jsonl")
    store.add("k1", not_graded(master.name, "x", master))
    with open(store.path, "a") as file:
        file.write('{"key": "k2", "result": {"note')  # a kill in the middle of a line
    reloaded = ResultStore(store.path)
    assert "k1" in reloaded and "k2" not in reloaded and reloaded.results["k1"].max_points == master.max_points
    reloaded.add("k3", not_graded(master.name, "y", master))
    assert set(ResultStore(store.path).results) == {"k1", "k3"}


def test_a_grade_is_reused_only_for_the_same_bytes_notebook_master_and_seed():
    key = result_key(b"abc", ORIENTATION, "f1", "1")
    assert key == result_key(b"abc", ORIENTATION, "f1", "1")
    assert len({key, result_key(b"abd", ORIENTATION, "f1", "1"), result_key(b"abc", "", "f1", "1"),
                result_key(b"abc", ORIENTATION, "f2", "1"), result_key(b"abc", ORIENTATION, "f1", "2")}) == 5


def test_the_csv_has_one_row_per_submission_and_a_column_per_exercise(tmp_path: Path, books: Notebooks):
    rows = [Row("a_00_orientation.ipynb", "a", not_graded(ORIENTATION, "x", books.masters[ORIENTATION])),
            Row("b_01_attention_patterns.ipynb", "b", not_graded(PATTERNS, "y", books.masters[PATTERNS]))]
    write_csv(rows, tmp_path / "g.csv")
    lines = (tmp_path / "g.csv").read_text().splitlines()
    assert lines[0] == ("file,student,notebook,status,reason,00.1,00.2,00.3,00.4,01.1,01.2,01.3,01.4,total,max,flags")
    assert lines[1] == "a_00_orientation.ipynb,a,00_orientation,not graded,x,0,0,0,0,,,,,0,6," and len(lines) == 3


# --- the sandbox's rules ----------------------------------------------------------------------------
def test_the_learner_writes_only_in_the_working_copy_and_reads_no_solutions(tmp_path: Path):
    work = tmp_path / "job" / "work"
    work.mkdir(parents=True)
    policy = Policy(work, {str(ROOT / "solutions"): "reads_course_files", str(tmp_path): "touches_verdict_log"})
    assert policy.may_write(str(work / "notes.txt")) and policy.may_write("/dev/null")
    assert not policy.may_write("/tmp/elsewhere.txt") and not policy.may_write(str(ROOT / "utils" / "x.py"))
    assert not policy.may_write("../secure/verdicts/00.1.jsonl")
    assert policy.unreadable(str(ROOT / "solutions" / "00_orientation.ipynb")) == "reads_course_files"
    assert policy.unreadable(str(tmp_path / "job" / "secure" / "plan.json")) == "touches_verdict_log"
    assert policy.unreadable(str(work / "notes.txt")) is None and policy.unreadable("/proc/self/environ") == "reads_seed"
    assert policy.unreadable(str(ROOT / "models" / "course-lm" / "config.json")) is None


def test_the_reference_handed_to_the_notebook_hides_the_other_solutions():
    from utils.reference import nb02

    copy_ = sealed(nb02.adversarial_attention, "adversarial_attention")
    assert copy_.__code__ is nb02.adversarial_attention.__code__
    assert "additive_attention" not in copy_.__globals__ and "gradient_importance" not in copy_.__globals__
    assert copy_.__globals__["jsd"] is not nb02.jsd and copy_.__globals__["jsd"].__code__ is nb02.jsd.__code__
    assert "adversarial_attention" not in copy_.__globals__["jsd"].__globals__


def test_what_the_learner_replaced_is_put_back_before_a_check():
    import torch

    from utils import checking

    watched = Watched()
    allclose, spec, init = torch.allclose, checking.exercises()["00.1"], checking.Verdict.__init__
    atol, invariants = spec.atol, list(spec.invariants)
    try:
        torch.allclose = lambda *args, **kwargs: True
        spec.atol = 1e9
        spec.invariants.clear()
        checking.Verdict.__init__ = lambda self, *args: None
        assert set(watched.changes()) >= {"torch.allclose", "exercise 00.1: atol", "exercise 00.1: invariants",
                                          "utils.checking.spec.Verdict.__init__"}
        watched.restore()
        assert torch.allclose is allclose and spec.atol == atol and spec.invariants == invariants
        assert checking.Verdict.__init__ is init and watched.changes() == []
    finally:
        torch.allclose, spec.atol, checking.Verdict.__init__ = allclose, atol, init
        spec.invariants[:] = invariants
