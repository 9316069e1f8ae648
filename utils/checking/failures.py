"""What goes wrong in a learner's code, in one line: exceptions, the learner's own frames, time limits.

`_Failure` carries the rest of a failing verdict line; `_describe_exception` names an exception and the
deepest line of the learner's code that raised it (never a line of the standard library, site-packages
or utils/); `_time_limit` interrupts code that runs too long with a CheckerTimeout.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import signal
import site
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any

MESSAGE_LIMIT = 200  # characters of an exception message, or of a source line, in a verdict
RETRY_ALARM_S = 0.5  # after a timeout, interrupt again this often while the learner's code goes on
_UTILS_DIR = str(Path(__file__).resolve().parents[1])  # utils/, all of it library code (never the learner's)


class CheckerTimeout(BaseException):
    """Raised inside a learner's function that runs too long: a BaseException, so `except Exception` cannot swallow it."""


class _Failure(Exception):
    """The rest of a failing verdict line, after the exercise id."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def _type_name(value: Any) -> str:
    return _shorten(getattr(type(value), "__name__", "object"), 60)


# --- exceptions -------------------------------------------------------------------------------------
# Errors that code right for the course's models meets on a checker model of another kind, and what to do instead.
_MODEL_HINTS = {
    "use_attn_result": "the checker's 3-layer model has no per-head hook_result (use_attn_result): zero or patch the "
                       "head's slice of hook_z, which every model has",
}


def _describe_exception(err: BaseException, learner_lines: bool = True) -> str:
    """`TypeError: message (your line 7: `x = q @ k`)`: one line, the deepest frame of the learner's own code."""
    full = _safe_str(err)
    lines = full.strip().splitlines()
    text = _shorten(lines[0].strip() if lines else "", MESSAGE_LIMIT)
    message = f"{_type_name(err)}: {text}" if text else _type_name(err)
    frame = _learner_frame(err) if learner_lines else None
    if frame is not None:
        filename, lineno = frame
        line = _shorten(linecache.getline(filename, lineno).strip(), MESSAGE_LIMIT)
        message = f"{message} (your line {lineno}: `{line}`)" if line else f"{message} (your line {lineno})"
    hints = [hint for key, hint in _MODEL_HINTS.items() if key in full]
    return f"{message}; {hints[0]}" if hints else message


def _safe_str(err: BaseException) -> str:
    """str(err), or a placeholder when str() itself raises or hangs."""
    try:
        with _time_limit(1.0, _Timer()):
            text = str(err)
        return text if type(text) is str else "(its message could not be shown)"
    except BaseException:
        return "(its message could not be shown)"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _learner_frame(err: BaseException) -> tuple[str, int] | None:
    """(filename, line) of the deepest traceback frame in the learner's code, if any."""
    found = None
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if _is_learner_frame(filename):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs |= set(getattr(site, "getsitepackages", lambda: [])())
    dirs |= {getattr(site, "getusersitepackages", lambda: None)(), _UTILS_DIR}
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


_LIBRARY_DIRS = _library_dirs()


def _is_learner_frame(filename: str) -> bool:
    """Notebook cells and the learner's files; not frozen modules, the standard library, site-packages or utils/."""
    if filename.startswith("<"):
        return not filename.startswith("<frozen")
    path = os.path.realpath(filename)
    if any(part in path.split(os.sep) for part in ("site-packages", "dist-packages")):
        return False
    return not path.startswith(_LIBRARY_DIRS)


# --- time limits ------------------------------------------------------------------------------------
class _Timer:
    """Whether a time limit has fired (the learner's code may have caught the interruption)."""

    fired = False


@contextlib.contextmanager
def _time_limit(seconds: float, timer: _Timer):
    """Interrupt the code in the block after `seconds`, and again every RETRY_ALARM_S while it goes on.

    The interruption is a CheckerTimeout, a BaseException; `timer.fired` records it even if the learner's
    code catches it. SIGALRM works in the main thread only (a notebook's); elsewhere there is no limit.
    """
    if not hasattr(signal, "setitimer") or sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _interrupt(signum, frame):
        timer.fired = True
        raise CheckerTimeout()

    previous = signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds, RETRY_ALARM_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
