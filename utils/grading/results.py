"""A graded submission: points from the logged verdicts, the results store, and the CSV, report and feedback.

Scoring. A verdict is one line per exercise, passed or not: the checker stops at the first case that
fails and logs `n_cases` (how many it had), not how many passed, so the honest reading is "the points the
master declares if the verdict passed, else 0". Partial credit is per exercise; a notebook's total is
the sum. Only verdicts the grader's own check steps logged (one COURSE_CHECK_LOG file per exercise,
which the learner's code can neither read nor write) count: a warning, an error in another cell or
anything on stderr changes nothing. No verdict (the function is missing, the notebook stopped before the
check, the checker was tampered with during it) scores 0 and says why.

The results store (`grades.results.jsonl` beside `grades.csv`) gets one JSON line per graded
submission, flushed and synced as soon as it is done, keyed by the submission's bytes, the notebook its
path names, the master's fingerprint and the seed: a rerun skips what it already holds, and a killed run
loses no finished row. Keep it with the seed: the key is a hash of it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

from utils.grading.masters import Master
from utils.grading.scan import Flag

STATUSES = ("graded", "incomplete", "not graded")


@dataclass
class ExerciseScore:
    id: str
    title: str
    max_points: int
    points: int
    verdict: str  # the checker's line, or why there is none: what the learner's feedback shows


@dataclass
class Result:
    notebook: str
    status: str  # one of STATUSES
    reason: str = ""
    exercises: list[ExerciseScore] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the restoration did (duplicates, dropped cells, ...)
    cell_errors: list[str] = field(default_factory=list)
    network: str = ""  # the network isolation the sandbox got
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> int:
        return sum(e.max_points for e in self.exercises)

    def flag_names(self) -> list[str]:
        return sorted({f.name for f in self.flags})

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        fields = dict(data)
        fields["exercises"] = [ExerciseScore(**e) for e in data.get("exercises", [])]
        fields["flags"] = [Flag(**f) for f in data.get("flags", [])]
        return cls(**fields)


def not_graded(notebook: str, reason: str, master: Master | None = None) -> Result:
    """A row for a submission that could not be run: every exercise of its notebook at 0."""
    scores = [ExerciseScore(d.id, d.title, d.points, 0, f"not graded: {reason}") for d in master.declarations] if master else []
    return Result(notebook, "not graded", reason, scores)


# --- scoring a finished run -------------------------------------------------------------------------
def score(master: Master, steps: list[dict], paths: dict[str, Path], ended: dict, timeout_s: float,
          cpu_s: float) -> Result:
    """The result of one sandboxed run, from its journal, evidence and verdict logs (`ended`: the zygote's reply)."""
    journal = _json_lines(paths["journal"])
    finished = {r["cell"]: r for r in journal if r.get("event") == "end"}
    started = [r["cell"] for r in journal if r.get("event") == "start"]
    labels = {s["cell"]: s["label"] for s in steps}
    stopped = _stop_reason(ended, journal, started, finished, labels, timeout_s, cpu_s)
    checks = {s["exercise"]: s for s in steps if s["kind"] == "check"}
    scores = [_exercise_score(d, checks.get(d.id), finished, paths, stopped) for d in master.declarations]
    errors = [f"cell {cell} ({labels.get(cell, '?')}): {r['error']}" for cell, r in finished.items()
              if r.get("error") and cell in labels and not any(s["cell"] == cell for s in checks.values())]
    runtime = [Flag(e["flag"], e["evidence"], "runtime") for e in _json_lines(paths["evidence"]) if "flag" in e]
    network = next((r["network"] for r in journal if "network" in r), "")
    return Result(master.name, "incomplete" if stopped else "graded", stopped, scores, sorted(set(runtime)),
                  cell_errors=errors, network=network, seconds=float(ended.get("seconds") or 0.0))


def _exercise_score(declaration, check: dict | None, finished: dict, paths: dict[str, Path], stopped: str) -> ExerciseScore:
    def scored(points: int, verdict: str) -> ExerciseScore:
        return ExerciseScore(declaration.id, declaration.title, declaration.points, points, verdict)

    if check is None:
        return scored(0, "no verdict: the master has no check cell for this exercise")
    end = finished.get(check["cell"])
    records = [r for r in _json_lines(paths["verdicts"] / f"{declaration.id}.jsonl") if r.get("exercise_id") == declaration.id]
    verdict = next((r for r in reversed(records) if "passed" in r), None)
    void = next((r["void"] for r in records if r.get("void")), "")
    if end is None:
        return scored(0, f"no verdict: the notebook stopped before this check ({stopped})")
    if end.get("missing"):
        return scored(0, f"no verdict: no function named `{check['function']}` was defined (renamed, or its cell deleted?)")
    if verdict is None:
        return scored(0, f"no verdict: the check could not run ({end.get('error', 'no verdict was logged')})")
    if void:
        return scored(0, f"not counted: {void}")
    return scored(declaration.points if verdict.get("passed") is True else 0, str(verdict.get("message", ""))[:500])


def _stop_reason(ended: dict, journal: list[dict], started: list[int], finished: dict, labels: dict,
                 timeout_s: float, cpu_s: float) -> str:
    """Why the run did not reach its last step ("" if it did)."""
    fatal = next((r["fatal"] for r in journal if "fatal" in r), None)
    if fatal:
        return f"grader error: {fatal.strip().splitlines()[-1][:200]}"
    where = _where(started, finished, labels)
    if ended.get("timed_out"):
        return f"timed out after {timeout_s:g} s{where}"
    sig = ended.get("signal")
    if sig is not None:
        return f"{_signal_meaning(sig, cpu_s)}{where}"
    if ended.get("exit") not in (0, None):
        return f"the notebook's process exited with code {ended['exit']}{where}"
    if started and started[-1] not in finished:
        return f"the notebook's process ended{where}"
    return ""


def _where(started: list[int], finished: dict, labels: dict) -> str:
    running = next((cell for cell in reversed(started) if cell not in finished), None)
    return f" in cell {running} ({labels.get(running, '?')})" if running is not None else " before the first cell"


def _signal_meaning(number: int, cpu_s: float) -> str:
    if number == signal.SIGXCPU:
        return f"stopped at the CPU-time limit ({cpu_s:g} s)"
    if number == signal.SIGKILL:
        return "killed (SIGKILL: out of memory, or the CPU-time limit's hard stop)"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"the notebook's process crashed ({name})"


def _json_lines(path: Path) -> list[dict]:
    """Every well-formed JSON object line of `path` (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# --- the results store ------------------------------------------------------------------------------
def result_key(data: bytes, expected: str, fingerprint: str, seed: str) -> str:
    """What makes a grade reusable: the file's bytes, the notebook its path names, the master and the seed."""
    seed_digest = hashlib.sha256(f"course-grading-seed:{seed}".encode()).hexdigest()
    file_digest = hashlib.sha256(data).hexdigest()
    return hashlib.sha256(f"{file_digest}|{expected}|{fingerprint}|{seed_digest}".encode()).hexdigest()[:32]


class ResultStore:
    """Results by key, appended one JSON line at a time (flushed and synced: a kill loses no finished row)."""

    def __init__(self, path: Path):
        self.path = path
        self.results: dict[str, Result] = {}
        for record in _json_lines(path):
            if "key" in record and "result" in record:
                self.results[record["key"]] = Result.from_dict(record["result"])
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with open(path, "a") as file:  # a line cut short by a kill: the next row starts on a line of its own
                file.write("\n")

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def add(self, key: str, result: Result) -> None:
        self.results[key] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as file:
            file.write(json.dumps({"key": key, "result": asdict(result)}) + "\n")
            file.flush()
            os.fsync(file.fileno())


# --- outputs ----------------------------------------------------------------------------------------
@dataclass
class Row:
    """One submission's line: where it came from, and its result."""

    file: str  # relative to the submissions folder
    student: str
    result: Result


def write_csv(rows: list[Row], path: Path) -> None:
    """One row per submission: file, student, notebook, status, reason, points per exercise, total, max, flags."""
    exercise_ids = sorted({e.id for row in rows for e in row.result.exercises})
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "student", "notebook", "status", "reason", *exercise_ids, "total", "max", "flags"])
        for row in rows:
            points = {e.id: e.points for e in row.result.exercises}
            writer.writerow([row.file, row.student, row.result.notebook, row.result.status, row.result.reason,
                             *(points.get(i, "") for i in exercise_ids), row.result.total, row.result.max_points,
                             ";".join(row.result.flag_names())])


def write_report(rows: list[Row], path: Path, settings: dict) -> None:
    """Everything the CSV says, and why: verdicts, flags with their evidence, notes, cell errors."""
    submissions = [{"file": r.file, "student": r.student, "total": r.result.total, "max": r.result.max_points,
                    **asdict(r.result)} for r in rows]
    summary = {status: sum(r.result.status == status for r in rows) for status in STATUSES}
    summary["flagged"] = sum(bool(r.result.flags) for r in rows)
    path.write_text(json.dumps({"settings": settings, "summary": summary, "submissions": submissions}, indent=1) + "\n")


def write_feedback(rows: list[Row], folder: Path) -> None:
    """One markdown file per submission for its student: per exercise, the points and the verdict line."""
    for row in rows:
        target = folder / Path(row.file).with_suffix(".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(feedback_markdown(row))


def feedback_markdown(row: Row) -> str:
    result = row.result
    lines = [f"# {result.notebook or 'Your notebook'}: {result.total} of {result.max_points} points", "",
             f"Submission `{row.file}` ({row.student})."]
    if result.status != "graded":
        lines += ["", f"**Not fully graded:** {result.reason}."]
    if result.exercises:
        lines += ["", "| exercise | points | verdict |", "|---|---|---|"]
        lines += [f"| {e.id} {e.title} | {e.points} / {e.max_points} | {_cell_text(e.verdict)} |" for e in result.exercises]
    if result.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
