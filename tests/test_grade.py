"""The grading command on a generated class (tests/grading_class.py): one row per submission, the points each
case must get, its flags, a sandbox nothing escapes, and a run that resumes after a kill.

The expected points are computed from the master's declared points and which answers the generator made
correct, never read from a grader's output. About three minutes on two cores (one submission hangs until
the 60 s timeout; another hangs inside its function until the checker's 20 s).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.grading_class import LEARNER_MODULE, OUTSIDE_FILE, Expected, Notebooks, case_names, write_class
from utils.grading.masters import ROOT, Master

SEED = "918273645"  # distinctive, so that a leak of it would show
LIMITS = ["--timeout", "60", "--memory-mb", "1024"]
RESUMED = ["correct1_00_orientation.ipynb", "correct2_00_orientation.ipynb", "empty_file_00_orientation.ipynb",
           "partly_a_00_orientation.ipynb"]
NAMES = case_names()


@dataclass
class GradedClass:
    submissions: Path
    out: Path
    expected: dict[str, Expected]
    rows: dict[str, dict]
    report: dict
    stdout: str
    masters: dict[str, Master]


def grade(submissions: Path, out: Path, *extra: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-m", "utils.grade", str(submissions), "--out", str(out), "--seed", SEED, *LIMITS, *extra]
    if popen:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)


def read_rows(out: Path) -> dict[str, dict]:
    with open(out, newline="") as file:
        return {row["file"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> GradedClass:
    OUTSIDE_FILE.unlink(missing_ok=True)
    folder = tmp_path_factory.mktemp("class")
    books = Notebooks()
    expected = write_class(folder / "submissions", books)
    out = folder / "out" / "grades.csv"
    run = grade(folder / "submissions", out, "--jobs", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    return GradedClass(folder / "submissions", out, expected, read_rows(out), report, run.stdout, books.masters)


def expected_points(expected: Expected, master: Master) -> dict[str, int]:
    """Each exercise's points: declared in the master, earned if the answer is correct and its check was reached."""
    def earned(exercise_id: str) -> bool:
        return expected.status != "not graded" and exercise_id in expected.correct and exercise_id not in expected.unreached

    return {d.id: d.points if earned(d.id) else 0 for d in master.declarations}


def test_the_class_covers_every_case(graded: GradedClass):
    assert len(graded.expected) >= 30
    for case in ["correct1", "partly_a", "stubs", "hang_top_level", "memory_bomb", "exception", "malformed_json",
                 "tampered_checker", "reference_import", "network_call", "deleted_cells", "renamed_function",
                 "output_flood", "sys_exit", "fork_bomb", "write_outside", "duplicated_cells", "other_notebook",
                 "crash", "old_nbformat", "reordered_cells", "empty_function"]:
        assert any(name.startswith(case + "_") for name in graded.expected), case


def test_one_row_per_submission(graded: GradedClass):
    files = sorted(p.relative_to(graded.submissions).as_posix() for p in graded.submissions.rglob("*.ipynb"))
    assert sorted(graded.rows) == files == sorted(graded.expected)
    assert len(graded.out.read_text().splitlines()) == len(files) + 1
    assert [s["file"] for s in graded.report["submissions"]] == files


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.split("_0")[0])
def test_every_submission_gets_the_points_its_answers_earn(graded: GradedClass, name: str):
    expected = graded.expected[name]
    master = graded.masters[expected.notebook]
    row = graded.rows[name]
    points = expected_points(expected, master)
    assert {i: int(row[i]) for i in points} == points, row
    assert (int(row["total"]), int(row["max"])) == (sum(points.values()), master.max_points)
    assert row["notebook"] == expected.notebook and row["student"] == name.split("_" + expected.notebook)[0]


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.split("_0")[0])
def test_every_submission_gets_its_status_and_flags(graded: GradedClass, name: str):
    expected, row = graded.expected[name], graded.rows[name]
    assert row["status"] == expected.status and expected.reason in row["reason"], row
    assert set(filter(None, row["flags"].split(";"))) == set(expected.flags), row


def test_runtime_evidence_backs_the_flags_the_sandbox_saw(graded: GradedClass):
    runtime = {s["file"]: {f["name"] for f in s["flags"] if f["source"] == "runtime"} for s in graded.report["submissions"]}
    assert runtime["write_outside_00_orientation.ipynb"] == {"writes_outside"}
    assert runtime["fork_bomb_00_orientation.ipynb"] == {"subprocess"}
    assert runtime["network_call_00_orientation.ipynb"] == {"network"}
    assert runtime["reference_import_00_orientation.ipynb"] == {"imports_reference"}
    assert runtime["reads_seed_00_orientation.ipynb"] == {"reads_seed"}
    assert runtime["patched_comparisons_00_orientation.ipynb"] == {"patches_checker"}
    assert runtime["patched_code_00_orientation.ipynb"] == {"patches_checker"}
    assert runtime["frame_walk_00_orientation.ipynb"] == {"introspection"}
    assert runtime["seed_in_verdict_00_orientation.ipynb"] == {"reads_seed"}
    assert not runtime["uses_networkx_00_orientation.ipynb"] and not runtime["edited_check_cell_00_orientation.ipynb"]
    assert not runtime["correct1_00_orientation.ipynb"] and not runtime["stubs_00_orientation.ipynb"]


def test_nothing_a_submission_wrote_outside_its_working_copy_exists(graded: GradedClass):
    assert not OUTSIDE_FILE.exists()
    assert not (ROOT / "utils" / LEARNER_MODULE).exists()


def test_the_timeout_and_the_crash_stop_only_their_own_notebook(graded: GradedClass):
    hang, crash = graded.rows["hang_top_level_00_orientation.ipynb"], graded.rows["crash_00_orientation.ipynb"]
    assert re.fullmatch(r"timed out after 60 s in cell \d+ \(your answer to 00\.4\)", hang["reason"])
    assert re.fullmatch(r"the notebook's process crashed \(SIGSEGV\) in cell \d+ \(your answer to 00\.3\)", crash["reason"])


def test_feedback_gives_each_student_the_verdicts_and_nothing_secret(graded: GradedClass):
    folder = graded.out.with_name("grades_feedback")
    files = sorted(p.relative_to(folder).with_suffix(".ipynb").as_posix() for p in folder.rglob("*.md"))
    assert files == sorted(graded.rows)
    partly = (folder / "partly_a_00_orientation.md").read_text()
    assert partly.startswith("# 00_orientation: 2 of 6 points")
    assert "| 00.1 per-token loss | 1 / 1 | 00.1 passed (" in partly
    assert "| 00.2 an attention pattern by hand | 0 / 2 | 00.2 is not implemented yet |" in partly
    assert "| 00.4 zero-ablate a head with a hook | 0 / 2 | 00.4 failed on " in partly
    everything = "".join(p.read_text() for p in folder.rglob("*.md"))
    assert SEED not in everything and "flag" not in everything.lower()
    for path in (graded.out, graded.out.with_suffix(".json"), graded.out.with_suffix(".results.jsonl")):
        assert SEED not in path.read_text(), path


def test_a_rerun_skips_what_is_graded_and_writes_the_same_csv(graded: GradedClass):
    before = graded.out.read_text()
    run = grade(graded.submissions, graded.out, "--jobs", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(graded.rows)} already graded, 0 to grade" in run.stdout
    assert graded.out.read_text() == before


def test_killing_the_grader_mid_run_loses_no_row_and_the_rerun_gives_the_same_rows(graded: GradedClass, tmp_path: Path):
    subset = tmp_path / "submissions"
    subset.mkdir()
    for name in RESUMED:
        (subset / name).write_bytes((graded.submissions / name).read_bytes())
    out = tmp_path / "grades.csv"
    grader = grade(subset, out, "--jobs", "1", start_new_session=True)
    store = out.with_suffix(".results.jsonl")
    deadline = time.monotonic() + 300
    while not (store.exists() and store.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(grader.pid, signal.SIGKILL)
    grader.wait()
    finished = store.read_text().count("\n")
    assert 1 <= finished < len(RESUMED)
    _assert_zygote_ends(out.with_suffix(".zygote.log"))
    rerun = grade(subset, out, "--jobs", "1")
    assert rerun.returncode == 0, rerun.stdout
    assert f"{len(RESUMED)} submissions: {finished} already graded, {len(RESUMED) - finished} to grade" in rerun.stdout
    resumed = read_rows(out)
    assert sorted(resumed) == sorted(RESUMED)
    assert not list(tmp_path.glob(".grades.work-*"))  # the killed run's working copies are gone too
    for name, row in resumed.items():
        assert row == {k: v for k, v in graded.rows[name].items() if k in row}, name


def _assert_zygote_ends(log: Path) -> None:
    """The warm process of a killed grader sees its stdin close and ends, with every sandbox it forked."""
    pids = [int(m) for m in re.findall(r"^zygote (\d+):", log.read_text(), re.MULTILINE)] if log.exists() else []
    assert pids
    deadline = time.monotonic() + 20
    while any(map(_running, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_running, pids))


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an orphan's exit status waits for a reaper here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
