"""A warm process that forks one sandboxed process per submission: the grader's kernel factory.

    zygote = Zygote(["00_orientation"], seed)   # starts `python -m utils.grading.zygote 00_orientation`
    outcome = zygote.run(request)                # blocks until that submission's process has ended
    zygote.close()

Starting a notebook kernel costs about 15 s here before the first cell does anything useful (torch,
transformer_lens and the course models load); checking a notebook 00 takes about 5. So the zygote loads
all of that once (the notebooks' imports, the checkers' models), then forks a child per submission, which
inherits it all for free and runs the notebook in its own sandbox (utils/grading/runner.py). The zygote
enforces each child's wall-clock limit (it kills the child's whole session) and reports how the child
ended: its exit status or signal, and whether the limit killed it. It never runs learner code itself.
The grading seed reaches it on stdin, never in an environment, and the children get it only through
the guard. If the grader dies, the zygote sees its stdin close and kills every child.

Protocol, one JSON object per line: the grader sends {"seed"} first, then requests {"job", "dir",
"timeout_s", "limits", "unreadable"}; the zygote answers {"ready"} once warm, then {"job", "exit",
"signal", "timed_out", "seconds"} as each child ends.
"""

from __future__ import annotations

import ast
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.1
READY_TIMEOUT_S = 600
ZYGOTE_ENV = {"MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false", "OPENBLAS_NUM_THREADS": "1",
              "PYTHONDONTWRITEBYTECODE": "1"}


class ZygoteDied(RuntimeError):
    """The warm process ended (or never became ready): the submission in flight was not graded."""


# --- the grader's side ------------------------------------------------------------------------------
class Zygote:
    """A running zygote: `run` may be called from several threads at once (one per job)."""

    def __init__(self, notebooks: list[str], seed: str, log: Path):
        from utils.checking import GRADING_SEED_VARIABLE
        from utils.env import CI_ENV

        env = {k: v for k, v in os.environ.items() if k != GRADING_SEED_VARIABLE}
        env.update({**CI_ENV, **ZYGOTE_ENV})
        with open(log, "ab") as stderr:
            self._process = subprocess.Popen([sys.executable, "-m", "utils.grading.zygote", *notebooks], cwd=ROOT,
                                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                             start_new_session=True)
        self._lock, self._waiting, self._replies, self._dead = threading.Lock(), {}, {}, False
        self._send({"seed": seed})
        if not self._read_ready():
            self.close()
            raise ZygoteDied(f"the warm process did not start (see {log})")
        threading.Thread(target=self._read_replies, daemon=True).start()

    def run(self, request: dict) -> dict:
        """Fork a child for `request` and wait until it ends; how it ended."""
        done = threading.Event()
        with self._lock:
            if self._dead:
                raise ZygoteDied("the warm process has ended")
            self._waiting[request["job"]] = done
            self._send(request)
        done.wait()
        reply = self._replies.pop(request["job"])
        if reply is None:
            raise ZygoteDied("the warm process ended while this submission ran")
        return reply

    @property
    def alive(self) -> bool:
        return not self._dead and self._process.poll() is None

    def close(self) -> None:
        try:
            self._process.stdin.close()
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()

    def _send(self, message: dict) -> None:
        try:
            self._process.stdin.write((json.dumps(message) + "\n").encode())
            self._process.stdin.flush()
        except OSError:
            self._dead = True

    def _read_ready(self) -> bool:
        ready, _, _ = select.select([self._process.stdout], [], [], READY_TIMEOUT_S)
        line = self._process.stdout.readline() if ready else b""
        return bool(line) and json.loads(line).get("ready", False)

    def _read_replies(self) -> None:
        for line in self._process.stdout:
            reply = json.loads(line)
            with self._lock:
                self._replies[reply["job"]] = reply
                self._waiting.pop(reply["job"]).set()
        with self._lock:
            self._dead = True
            for job, done in self._waiting.items():
                self._replies[job] = None
                done.set()
            self._waiting.clear()


# --- the zygote's side ------------------------------------------------------------------------------
@dataclass
class _Child:
    job: int
    started: float
    deadline: float
    timed_out: bool = False


def main(notebooks: list[str]) -> int:
    os.environ.update(ZYGOTE_ENV)
    print(f"zygote {os.getpid()}: warming {', '.join(notebooks)}", file=sys.stderr, flush=True)
    lines = _Lines(sys.stdin.fileno())
    seed = json.loads(lines.next(block=True) or "{}").get("seed", "")
    _warm(notebooks)
    _answer(sys.stdout, {"ready": True})
    _serve(lines, seed)
    return 0


def _warm(notebooks: list[str]) -> None:
    """Import and load everything a notebook's kernel would, so that each child starts with it."""
    import matplotlib.pyplot  # noqa: F401  (Agg, from MPLBACKEND)

    from utils import checking
    from utils.grading import guard, masters, runner  # noqa: F401
    from utils.models import load_model

    specs = checking.exercises()
    for name in notebooks:
        master = masters.load_master(ROOT / "solutions" / f"{name}.ipynb")
        for module in _imported_modules(master):
            try:
                importlib.import_module(module)
            except Exception:  # a module the notebook itself would fail on: not the zygote's business
                pass
        for declaration in master.declarations:
            checking.cases_for(specs[declaration.id], "public")  # loads the checkers' models
    load_model("course-lm")
    guard.forget_reference()
    gc.collect()
    gc.freeze()  # children do not scan (and so do not copy) what the zygote loaded


def _imported_modules(master) -> list[str]:
    from utils.authoring.build import _python_lines
    from utils.grading.masters import code_cells

    modules = []
    for _, source in code_cells(master.student):
        try:
            tree = ast.parse(_python_lines(source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.append(node.module)
    return modules


def _serve(lines: _Lines, seed: str) -> None:
    from utils.grading.runner import run_child

    children: dict[int, _Child] = {}
    while True:
        _reap(children)
        _enforce_deadlines(children)
        line = lines.next(block=False)
        if line is None:  # stdin closed: the grader is gone
            break
        if line:
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                run_child(request, seed, os.getppid())
            now = time.monotonic()
            children[pid] = _Child(request["job"], now, now + float(request["timeout_s"]))
    for pid in children:
        _kill_session(pid)


def _reap(children: dict[int, _Child]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        child = children.pop(pid, None)
        _kill_session(pid)  # anything it left behind
        if child is not None:
            _answer(sys.stdout, {"job": child.job, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                                 "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                                 "timed_out": child.timed_out, "seconds": round(time.monotonic() - child.started, 2)})


def _enforce_deadlines(children: dict[int, _Child]) -> None:
    now = time.monotonic()
    for pid, child in children.items():
        if now > child.deadline and not child.timed_out:
            child.timed_out = True
            _kill_session(pid)


def _kill_session(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


def _answer(stream: IO, message: dict) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


class _Lines:
    """Lines from a file descriptor without Python's buffering (select() must see what is left)."""

    def __init__(self, fd: int):
        self._fd, self._buffer, self._closed = fd, b"", False

    def next(self, block: bool) -> str | None:
        """The next line; "" if none is ready (block=False); None once the other end has closed."""
        while b"\n" not in self._buffer:
            if self._closed:
                return None
            ready, _, _ = select.select([self._fd], [], [], None if block else POLL_S)
            if not ready:
                return ""
            chunk = os.read(self._fd, 65536)
            self._closed = not chunk
            self._buffer += chunk
            if not block and b"\n" not in self._buffer and not self._closed:
                return ""
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
