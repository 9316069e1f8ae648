"""One submission in its sandbox: the process the zygote forks runs the rebuilt notebook here and exits.

A job folder holds `work/` (the working copy: the notebook runs in work/notebooks, HOME and TMPDIR are
inside it; the only place the learner's code may write) and `secure/` (what the grader reads back, which
the learner's code can neither read nor write): the plan (restore.plan's steps), the journal (one line
as each step starts and ends), the evidence (runtime flags), the captured output and one verdict log per
exercise (COURSE_CHECK_LOG, written by `utils.checking.check`).

Before the first cell the process leaves the zygote's session, gets a network namespace of its own when
the kernel allows it (else only the audit hook stands between it and the network), sets its resource
limits (address space, CPU seconds, file size, processes), drops the stdio it inherited and installs the
guard (utils/grading/guard.py). Cells run in an IPython shell, in the master's order. A check step calls
the real checker itself, on the hidden tier, after putting back anything the learner's code replaced, so a
redefined `check` or a patched `torch.allclose` changes nothing; a check during which such objects change
again does not count.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path
from typing import Any, NoReturn

from utils import checking  # bound when the zygote starts: a learner's `utils.checking = ...` cannot swap it
from utils.checking.failures import _safe_str
from utils.grading.guard import Evidence, Guard, Policy, Watched, forget_reference

OUTPUT_LIMIT = 1_000_000  # characters of captured output kept per submission
FILE_LIMIT = 256 * 2 ** 20  # bytes: the largest file the learner's code may write
CPU_GRACE_S = 5  # between the CPU limit's warning signal and its kill
_CLONE_NEWNET, _CLONE_NEWUSER, _PR_SET_PDEATHSIG = 0x40000000, 0x10000000, 1
_MISSING = object()
_dumps = json.dumps  # bound before any learner code: a replaced json.dumps cannot garble the journal


def job_paths(job_dir: Path) -> dict[str, Path]:
    """The folders and files of a job (the grader creates them; the sandbox fills them)."""
    secure = job_dir / "secure"
    return {"work": job_dir / "work", "notebooks": job_dir / "work" / "notebooks", "home": job_dir / "work" / "home",
            "tmp": job_dir / "work" / "tmp", "secure": secure, "plan": secure / "plan.json",
            "journal": secure / "journal.jsonl", "evidence": secure / "evidence.jsonl",
            "output": secure / "output.txt", "verdicts": secure / "verdicts"}


def run_child(request: dict, seed: str, parent: int) -> NoReturn:
    """The forked process's whole life: isolate, run the plan, exit (never returns, never raises)."""
    code = 70
    try:
        code = _run(request, seed, parent)
    except BaseException:  # the grader's own failure: say so in the journal
        try:
            with open(job_paths(Path(request["dir"]))["journal"], "a") as journal:
                journal.write(json.dumps({"fatal": traceback.format_exc()[-2000:]}) + "\n")
        except BaseException:
            pass
    finally:
        os._exit(code)


def _run(request: dict, seed: str, parent: int) -> int:
    paths = job_paths(Path(request["dir"]))
    _detach(parent)
    plan = json.loads(paths["plan"].read_text())
    journal = _Journal(paths["journal"])
    journal.write({"network": _isolate_network()})
    output = _CappedOutput(paths["output"], OUTPUT_LIMIT)
    _enter_working_copy(paths, output)
    shell = _make_shell()
    guard = Guard(Policy(paths["work"], {**request["unreadable"], str(paths["secure"]): "touches_verdict_log"}),
                  Evidence(paths["evidence"]), seed)
    _reference_never_cached()
    watched = Watched()
    _set_limits(request["limits"])
    guard.install()
    for step in plan["steps"]:
        journal.write({"cell": step["cell"], "event": "start"})
        started = time.perf_counter()
        if step["kind"] == "check":
            outcome = _graded_check(shell, step, guard, watched, paths, output)
        else:
            outcome = _run_code(shell, step["source"])
        journal.write({"cell": step["cell"], "event": "end", "seconds": round(time.perf_counter() - started, 2), **outcome})
    return 0


# --- isolation --------------------------------------------------------------------------------------
def _detach(parent: int) -> None:
    """A session of its own (so a timeout kills everything it started), death with the zygote, no inherited stdio."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the zygote died before the line above
        os._exit(71)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _isolate_network() -> str:
    """A new, empty network namespace (root, or a user namespace otherwise), if the kernel allows it."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    return "namespace" if libc.unshare(flags) == 0 else "audit hook only"


def _set_limits(limits: dict) -> None:
    """Address space (beyond what the warm process already holds), CPU seconds, file size, processes, no core files."""
    page = os.sysconf("SC_PAGE_SIZE")
    held = int(Path("/proc/self/statm").read_text().split()[0]) * page
    memory = held + int(limits["memory_mb"]) * 2 ** 20
    cpu = int(limits["cpu_s"])
    processes = _user_processes() + int(limits["processes"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file too large fails the write instead of killing the process
    for name, value in ((resource.RLIMIT_AS, (memory, memory)), (resource.RLIMIT_CPU, (cpu, cpu + CPU_GRACE_S)),
                        (resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT)), (resource.RLIMIT_CORE, (0, 0)),
                        (resource.RLIMIT_NPROC, (processes, processes))):
        resource.setrlimit(name, value)


def _user_processes() -> int:
    """How many processes this user runs now (RLIMIT_NPROC counts them all; root is exempt from it anyway)."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


def _enter_working_copy(paths: dict[str, Path], output: _CappedOutput) -> None:
    os.chdir(paths["notebooks"])
    os.environ.update(HOME=str(paths["home"]), TMPDIR=str(paths["tmp"]), IPYTHONDIR=str(paths["home"] / ".ipython"),
                      MPLBACKEND="Agg")
    os.environ.pop("COURSE_CHECK_LOG", None)
    os.environ.pop("COURSE_CHECK_TIER", None)  # the learner's own check() calls stay public; graded ones ask for hidden
    tempfile.tempdir = None
    sys.dont_write_bytecode = True
    sys.stdout = sys.stderr = output
    sys.stdin = io.StringIO()


def _make_shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config)


def _reference_never_cached() -> None:
    """The checker imports the reference solutions afresh each time and leaves no module behind.

    Otherwise utils.reference would sit in sys.modules while the learner's function runs inside a check,
    and an `importlib.import_module` there would return it without passing the audit hook.
    """
    cached = checking.reference_function

    def reference_function(spec):
        try:
            return cached(spec)
        finally:
            forget_reference()

    checking.reference_function = reference_function


# --- steps ------------------------------------------------------------------------------------------
def _run_code(shell, source: str) -> dict:
    result = shell.run_cell(source, store_history=False)
    error = result.error_before_exec or result.error_in_exec
    return {"error": _describe(error)} if error is not None else {}


def _graded_check(shell, step: dict, guard: Guard, watched: Watched, paths: dict[str, Path], output) -> dict:
    """Run the real checker on the hidden tier on the learner's function; what the journal records of it."""
    function = shell.user_ns.get(step["function"], _MISSING)
    if function is _MISSING:
        return {"missing": True}
    sys.stdout = sys.stderr = output
    replaced = watched.restore()
    for name in replaced:
        guard.evidence.add("patches_checker", f"{name} was replaced (put back before the check of {step['exercise']})")
    log = paths["verdicts"] / f"{step['exercise']}.jsonl"
    try:
        with guard.verdict_log(log):
            result = checking.check(step["exercise"], function, tier="hidden")
    except BaseException as err:  # the check itself failed: no verdict to score
        return {"error": _describe(err)}
    spec = checking.exercises()[step["exercise"]]
    void = _void_reason(function, result, spec, watched, guard)
    if void:  # beside the verdict, where the learner's code cannot write
        with open(log, "a") as file:
            file.write(_dumps({"exercise_id": step["exercise"], "void": void}) + "\n")
    shell.user_ns[step["target"]] = result if result is function else sealed(result, spec.function)
    forget_reference()
    return {"void": void} if void else {}


def _void_reason(function: Any, result: Any, spec, watched: Watched, guard: Guard) -> str:
    """Why a verdict must not count ("" if it may): the checker changed under it, or it judged the reference itself."""
    if changed := watched.changes():
        watched.restore()
        reason = f"{', '.join(changed[:3])} changed during the check"
        guard.evidence.add("patches_checker", f"{reason} of {spec.id}")
        return reason
    if result is function and getattr(function, "__code__", None) is checking.reference_function(spec).__code__:
        guard.evidence.add("imports_reference", f"the function checked for {spec.id} is the course's reference solution")
        return "the function checked is the course's reference solution"
    return ""


def sealed(function: Any, name: str) -> Any:
    """The reference solution handed to the notebook after a failed check, without the module's other solutions.

    check() returns the reference so that the cells below can run; its globals would otherwise hold every
    other exercise's solution. The copy sees only the exercise functions its own code calls (sealed too).
    """
    if not isinstance(function, types.FunctionType):
        return function
    solutions = {n for n, v in function.__globals__.items() if isinstance(v, types.FunctionType)
                 and v.__module__ == function.__module__}
    used = _names_in(function.__code__)
    namespace = {k: v for k, v in function.__globals__.items() if k not in solutions}
    namespace.update({k: sealed(function.__globals__[k], k) for k in solutions & used if k != name})
    copy = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                              function.__closure__)
    copy.__kwdefaults__, copy.__doc__ = function.__kwdefaults__, function.__doc__
    namespace[name] = copy
    return copy


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names_in(constant)
    return names


def _describe(error: BaseException) -> str:
    """`ValueError: first line of the message`, short: what the journal and the report say of an error."""
    lines = _safe_str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


class _Journal:
    """JSON lines, each flushed at once: what the grader reads back, even after a kill."""

    def __init__(self, path: Path):
        self._file = open(path, "a", buffering=1)

    def write(self, record: dict) -> None:
        self._file.write(_dumps(record) + "\n")


class _CappedOutput(io.TextIOBase):
    """Where print() goes: a file that keeps the first `limit` characters and drops the rest (an output flood costs nothing)."""

    def __init__(self, path: Path, limit: int):
        self._file, self._left = open(path, "w", buffering=1), limit

    def write(self, text: str) -> int:
        if self._left > 0:
            kept = str(text)[:self._left]
            self._left -= len(kept)
            self._file.write(kept)
        return len(text)

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"
