"""Grade a class's notebooks: one row per submission, points from the hidden checkers, and why.

    python -m utils.grade SUBMISSIONS_DIR --out grades.csv [--report report.json] [--feedback DIR]
                          [--jobs N] [--force] [--timeout S] [--memory-mb M] [--cpu-s C] [--seed SEED]
                          [--notebook NAME]

Every `*.ipynb` under SUBMISSIONS_DIR is a submission. Its notebook comes from its path when the path
names one ("alice_00_orientation.ipynb", "00_orientation/alice.ipynb", or --notebook for all), else from
its content; a file holding another notebook than its path names is not graded, and says so. The
student is the file's name without the notebook's (else its folder).

For each submission (utils/grading/): the notebook is rebuilt on its master, keeping only the learner's
answer cells (restore.py); it runs in a sandboxed process of its own, forked from a warm process that
has the course loaded (zygote.py, runner.py, guard.py), under the hidden tier with the instructor's
grading seed (COURSE_GRADING_SEED, or --seed); and it is scored from the verdicts the checker logged
(results.py). Flags from reading the answers (scan.py) and from what the sandbox refused go to the CSV
and the report. Limits per submission: --timeout (wall clock for the whole notebook), --cpu-s (CPU
seconds), --memory-mb (memory beyond what the warm process already holds); one torch thread, no network.

Outputs: the CSV, a JSON report (default: the CSV's name with .json), one markdown feedback file per
submission for its student (default folder: the CSV's name with _feedback), and the results store
(the CSV's name with .results.jsonl) that lets a rerun skip what is already graded (--force regrades).
The submissions' working copies live in a hidden folder beside the CSV while they run: one grader per
CSV at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import nbformat

from utils.checking import GRADING_SEED_VARIABLE
from utils.grading import restore
from utils.grading.masters import ROOT, Master, load_masters
from utils.grading.results import Result, ResultStore, Row, not_graded, result_key, score, write_csv, write_feedback, write_report
from utils.grading.runner import job_paths
from utils.grading.scan import Flag, scan
from utils.grading.zygote import Zygote, ZygoteDied

DEFAULTS = {"timeout": 300.0, "memory_mb": 4096, "cpu_s": 600, "processes": 32}
# What the learner's code may not read of the course, and the flag trying raises.
UNREADABLE = {"solutions": "reads_course_files", "utils/reference": "imports_reference", "tests": "reads_course_files",
              ".git": "reads_course_files"}


@dataclass
class Submission:
    relative: Path  # to the submissions folder
    data: bytes
    expected: Master | None  # the notebook its path names
    master: Master | None  # the notebook it is graded as
    notebook: nbformat.NotebookNode | None
    problem: str  # why it cannot be run ("" if it can)
    key: str

    @property
    def student(self) -> str:
        return restore.student_id(self.relative, self.expected or self.master)


@dataclass
class Settings:
    timeout_s: float
    memory_mb: int
    cpu_s: int
    seed: str
    unreadable: dict[str, str]  # path -> the flag reading it raises

    def public(self) -> dict:
        """What the report records (never the seed)."""
        return {"timeout_s": self.timeout_s, "memory_mb": self.memory_mb, "cpu_s": self.cpu_s}


# --- reading the class ------------------------------------------------------------------------------
def submissions(folder: Path, masters: dict[str, Master], seed: str, notebook: str | None = None) -> list[Submission]:
    """Every submission under `folder`, sorted by path, read and identified (never raises for a bad file)."""
    return [prepare(path, folder, masters, seed, notebook) for path in sorted(folder.rglob("*.ipynb"))
            if ".ipynb_checkpoints" not in path.parts]


def prepare(path: Path, folder: Path, masters: dict[str, Master], seed: str, notebook: str | None = None) -> Submission:
    relative = path.relative_to(folder)
    data = path.read_bytes()
    expected = masters.get(notebook) if notebook else restore.expected_master(relative, masters)
    parsed, master, problem = None, expected, ""
    try:
        parsed = restore.read_notebook(data)
        master = restore.identify(parsed, masters) or expected
        if master is None:
            problem = "not a notebook of this course (no exercise of any master found in it)"
        elif expected is not None and master is not expected:
            problem, master = f"this file is notebook {master.name}, not {expected.name}", expected
    except restore.NotGradable as err:
        problem = str(err)
    fingerprint = master.fingerprint if master else ""
    key = result_key(data, expected.name if expected else "", fingerprint, seed)
    return Submission(relative, data, expected, master, parsed, problem, key)


# --- grading one ------------------------------------------------------------------------------------
def grade(submission: Submission, sandbox: _Sandbox, settings: Settings, workroot: Path, keep: bool = False):
    """The Result of one submission (a "not graded" one when it cannot run)."""
    if submission.problem:
        return not_graded(submission.master.name if submission.master else "", submission.problem, submission.master)
    answers, notes = restore.find_answers(submission.notebook, submission.master)
    steps = restore.plan(submission.master, answers)
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=workroot))
    try:
        paths = _make_job(job_dir, steps)
        ended = sandbox.run({"dir": str(job_dir), "timeout_s": settings.timeout_s, "unreadable": settings.unreadable,
                             "limits": {"memory_mb": settings.memory_mb, "cpu_s": settings.cpu_s,
                                        "processes": DEFAULTS["processes"]}})
        result = score(submission.master, steps, paths, ended, settings.timeout_s, settings.cpu_s)
    finally:
        if not keep:
            shutil.rmtree(job_dir, ignore_errors=True)
    static = [flag for source in answers.values() for flag in scan(source)]
    result.flags = sorted(set(static) | set(result.flags))
    result.notes = notes
    return redacted(result, settings.seed)


def redacted(result: Result, seed: str) -> Result:
    """`result` with the grading seed cut out of every text a student or a report sees, and flagged where it was:
    the seed lives in the sandboxed process (the checker needs it), so a submission may find it and print it."""
    hidden = "<the grading seed>"
    leaked = False

    def cut(text: str) -> str:
        nonlocal leaked
        if seed and seed in text:
            leaked = True
            return text.replace(seed, hidden)
        return text

    for exercise in result.exercises:
        exercise.verdict = cut(exercise.verdict)
    result.reason = cut(result.reason)
    result.notes, result.cell_errors = [cut(n) for n in result.notes], [cut(e) for e in result.cell_errors]
    result.flags = [Flag(f.name, cut(f.evidence), f.source) for f in result.flags]
    if leaked:
        result.flags = sorted(set(result.flags) | {Flag("reads_seed", "the grading seed appeared in the grading output", "runtime")})
    return result


def _make_job(job_dir: Path, steps: list[dict]) -> dict[str, Path]:
    paths = job_paths(job_dir)
    for folder in ("notebooks", "home", "tmp", "verdicts"):
        paths[folder].mkdir(parents=True)
    paths["plan"].write_text(json.dumps({"steps": steps}))
    return paths


class _Sandbox:
    """The zygote, started on first use and restarted once if it dies under a submission."""

    def __init__(self, notebooks: list[str], seed: str, log: Path):
        self._notebooks, self._seed, self._log = notebooks, seed, log
        self._zygote: Zygote | None = None
        self._lock, self._jobs, self._closed = threading.Lock(), iter(range(1, 10 ** 9)), False

    def run(self, request: dict) -> dict:
        for attempt in (1, 2):
            zygote = self._current()
            try:
                with self._lock:
                    request["job"] = next(self._jobs)
                return zygote.run(request)
            except ZygoteDied:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _current(self) -> Zygote:
        with self._lock:
            if self._closed:
                raise ZygoteDied("grading was interrupted")
            if self._zygote is None or not self._zygote.alive:
                self._zygote = Zygote(self._notebooks, self._seed, self._log)
            return self._zygote

    def close(self) -> None:
        """Stop the zygote, which kills the sandboxes still running (their submissions stay ungraded)."""
        with self._lock:
            self._closed = True
        if self._zygote is not None:
            self._zygote.close()


# --- the whole class --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    seed = _seed(args.seed)
    masters = load_masters(ROOT)
    if args.notebook and args.notebook not in masters:
        raise SystemExit(f"--notebook {args.notebook}: not a notebook of this course ({', '.join(masters)})")
    folder = Path(args.submissions).resolve()
    everything = submissions(folder, masters, seed, args.notebook)
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out.with_suffix(".results.jsonl"))
    unstored: dict[str, Result] = {}  # grader errors: reported now, graded again by the next run
    todo = {s.key: s for s in everything if args.force or s.key not in store}
    print(f"{len(everything)} submissions: {len(everything) - len(todo)} already graded, {len(todo)} to grade"
          f" ({args.jobs} at a time)", flush=True)
    settings = Settings(args.timeout, args.memory_mb, args.cpu_s, seed,
                        {**{str(ROOT / p): flag for p, flag in UNREADABLE.items()},
                         str(folder): "reads_course_files", str(store.path): "reads_course_files"})
    try:
        _grade_all(list(todo.values()), store, unstored, settings, args, out)
    finally:
        results = {**unstored, **store.results}
        rows = [Row(s.relative.as_posix(), s.student, results[s.key]) for s in everything if s.key in results]
        _write_outputs(rows, out, args, settings)
    return 0


def _grade_all(todo: list[Submission], store: ResultStore, unstored: dict[str, Result], settings: Settings, args,
               out: Path) -> None:
    runnable = sorted({s.master.name for s in todo if not s.problem})
    workroot = _fresh_workroot(out)
    settings.unreadable[str(workroot)] = "reads_course_files"  # other submissions' working copies
    sandbox = _Sandbox(runnable, settings.seed, out.with_suffix(".zygote.log"))
    done = 0
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        pending: dict[Future, Submission] = {pool.submit(grade, s, sandbox, settings, workroot, args.keep): s for s in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                submission = pending.pop(future)
                done += 1
                _record(future, submission, store, unstored, f"{done}/{len(todo)}")
    finally:  # also on Ctrl-C: what is finished is in the store; what runs is stopped, not waited for
        sandbox.close()
        pool.shutdown(wait=True, cancel_futures=True)
        if args.keep:
            print(f"working folders kept in {workroot}", flush=True)
        else:
            shutil.rmtree(workroot, ignore_errors=True)


def _fresh_workroot(out: Path) -> Path:
    """A folder for the submissions' working copies beside the CSV; those of a killed earlier run are removed."""
    prefix = f".{out.stem}.work-"
    for stale in out.parent.glob(prefix + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))


def _record(future: Future, submission: Submission, store: ResultStore, unstored: dict[str, Result],
            progress: str) -> None:
    try:
        result = future.result()
    except Exception as err:  # the grader's failure, not the submission's: reported, not stored, retried next run
        result = not_graded(submission.master.name, f"grader error, grade again: {type(err).__name__}: {err}"[:300],
                            submission.master)
        unstored[submission.key] = result
    else:
        store.add(submission.key, result)
    flags = f" flags: {', '.join(result.flag_names())}" if result.flags else ""
    reason = f" ({result.reason})" if result.reason else ""
    print(f"{progress} {submission.relative}: {result.status}, {result.total}/{result.max_points}{reason}{flags}",
          flush=True)


def _write_outputs(rows: list[Row], out: Path, args, settings: Settings) -> None:
    write_csv(rows, out)
    write_report(rows, Path(args.report) if args.report else out.with_suffix(".json"), settings.public())
    write_feedback(rows, Path(args.feedback) if args.feedback else out.with_name(out.stem + "_feedback"))


def _seed(option: str | None) -> str:
    seed = (option or os.environ.get(GRADING_SEED_VARIABLE, "")).strip()
    try:
        int(seed)
    except ValueError:
        raise SystemExit(f"grading needs the secret grading seed, an integer: set {GRADING_SEED_VARIABLE} or pass --seed")
    return seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", help="folder of submitted notebooks (searched recursively)")
    parser.add_argument("--out", required=True, help="the CSV to write (grades.csv)")
    parser.add_argument("--report", help="the JSON report (default: the CSV's name with .json)")
    parser.add_argument("--feedback", help="folder for one markdown feedback file per submission")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--force", action="store_true", help="regrade submissions the results store already holds")
    parser.add_argument("--timeout", type=float, default=DEFAULTS["timeout"], help="wall-clock seconds per notebook")
    parser.add_argument("--memory-mb", type=int, default=DEFAULTS["memory_mb"],
                        help="memory a notebook may allocate beyond the preloaded course (MB)")
    parser.add_argument("--cpu-s", type=int, default=DEFAULTS["cpu_s"], help="CPU seconds per notebook")
    parser.add_argument("--seed", help=f"the grading seed (default: ${GRADING_SEED_VARIABLE})")
    parser.add_argument("--notebook", help="grade every file as this notebook (e.g. 00_orientation)")
    parser.add_argument("--keep", action="store_true", help="keep each submission's working folder (debugging)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    code = run(args)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
