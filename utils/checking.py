"""Hidden-test checkers: run a learner's function on unseen inputs and print a one-line verdict.

A notebook calls `check("00.2", attention_pattern)`. The exercise's spec (utils/exercises/) builds
cases the learner has not seen: seeded random inputs, edge cases, and invariants where they exist.
Each case runs the learner's function and the reference solution (utils/reference/, generated from
solutions/ by `python -m utils.build`) on the same inputs and compares them at stated tolerances.

Two tiers share the same specs:
- "public" (the default, used in notebooks): fixed seeds, so a learner sees a stable verdict;
- "hidden" (instructors): seeds from the COURSE_GRADING_SEED environment variable and more random
  cases, so a submission cannot be tuned to the public cases.

Every verdict is one line; the expected answer is never printed in full.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import linecache
import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

PUBLIC_SEED = 20261122
TIERS = ("public", "hidden")
_UTILS_DIR = str(Path(__file__).resolve().parent)
FROZEN_DIR = Path(__file__).resolve().parent / "expected"


@dataclass
class Case:
    """One input to an exercise: `args` go to both the learner's function and the reference."""

    kind: str  # "random" or "edge"
    args: tuple
    label: str = ""


@dataclass
class Exercise:
    """What an exercise checks. `make_cases(rng, n_random)` returns the cases for one run."""

    id: str
    function: str  # the name of the function in the solution notebook
    make_cases: Callable[[np.random.Generator, int], list[Case]]
    n_random: int = 4
    atol: float = 1e-5
    rtol: float = 1e-4
    invariants: list[Callable[[Any, Case], str | None]] = field(default_factory=list)
    timeout_s: float = 20.0
    compare_values: bool = True  # False: only type and shape must match the reference; invariants decide


@dataclass
class Verdict:
    exercise_id: str
    passed: bool
    message: str
    n_cases: int = 0

    def __str__(self) -> str:
        return self.message


class CheckerTimeout(Exception):
    pass


class _Mismatch(Exception):
    """A learner output that differs from the reference: `kind` is shape, dtype, type or values."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


_REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    _REGISTRY[exercise.id] = exercise
    return exercise


def exercises() -> dict[str, Exercise]:
    """All registered exercises, by id (loads every spec module in utils/exercises/)."""
    import utils.exercises as package

    for path in sorted(Path(package.__file__).parent.glob("nb*.py")):
        importlib.import_module(f"utils.exercises.{path.stem}")
    return dict(sorted(_REGISTRY.items()))


def check(exercise_id: str, fn: Callable, *, tier: str | None = None) -> None:
    """Run exercise `exercise_id`'s hidden cases on `fn` and print the verdict line.

    The tier defaults to COURSE_CHECK_TIER (or "public"). If COURSE_CHECK_LOG names a file, the
    verdict is also appended to it as a JSON line: the hook a grading run collects results through.
    """
    verdict = run_check(exercise_id, fn, tier=tier or os.environ.get("COURSE_CHECK_TIER", "public"))
    print(verdict)
    if log := os.environ.get("COURSE_CHECK_LOG"):
        with open(log, "a") as file:
            file.write(json.dumps(dataclasses.asdict(verdict)) + "\n")


def run_check(exercise_id: str, fn: Callable, *, tier: str = "public", reference: Callable | None = None) -> Verdict:
    """Like `check`, but return the Verdict. `reference` overrides the generated reference solution."""
    known = exercises()
    if exercise_id not in known:
        return Verdict(str(exercise_id), False, f"there is no exercise {exercise_id!r}; known exercises: {', '.join(known)}")
    if not callable(fn):
        return Verdict(exercise_id, False, f"{exercise_id}: check expects your function itself, "
                       f"e.g. check({exercise_id!r}, my_function); got {type(fn).__name__}")
    if tier not in TIERS:
        return Verdict(exercise_id, False, f"{exercise_id}: tier must be one of {TIERS}; got {tier!r}")
    spec = known[exercise_id]
    cases = cases_for(spec, tier)
    expected = _expected_outputs(spec, cases, tier, reference)
    if isinstance(expected, str):
        return Verdict(exercise_id, False, f"{exercise_id}: {expected}")
    for index, (case, answer) in enumerate(zip(cases, expected), start=1):
        failure = _run_case(spec, fn, answer, case, index)
        if failure is not None:
            return Verdict(exercise_id, False, f"{exercise_id} {failure}", len(cases))
    return Verdict(exercise_id, True, f"{exercise_id} passed ({len(cases)} hidden cases)", len(cases))


def _expected_outputs(spec: Exercise, cases: list[Case], tier: str, reference: Callable | None) -> list | str:
    """The reference's outputs on `cases`; in a student release (no reference), the frozen public ones."""
    if reference is None:
        try:
            reference = reference_function(spec)
        except ModuleNotFoundError:
            if tier == "hidden":
                return "the hidden tier needs the reference solutions (utils/reference/), which a student release leaves out"
            return frozen_expected(spec)
    return [reference(*_clone(case.args)) for case in cases]


def frozen_expected(spec: Exercise) -> list:
    """Expected public-tier outputs stored by `python -m utils.release` (used when utils/reference/ is absent)."""
    return torch.load(FROZEN_DIR / f"nb{spec.id.split('.')[0]}.pt", weights_only=False)[spec.id]


def reference_function(spec: Exercise) -> Callable:
    """The solution's function for `spec`, from the module that utils.build generates."""
    module = importlib.import_module(f"utils.reference.nb{spec.id.split('.')[0]}")
    return getattr(module, spec.function)


def cases_for(spec: Exercise, tier: str) -> list[Case]:
    """The cases a run of `spec` uses: the same every time for a tier (and grading seed)."""
    if tier == "public":
        seed, n_random = PUBLIC_SEED, spec.n_random
    else:
        seed, n_random = int(os.environ.get("COURSE_GRADING_SEED", "0")) or 1, 3 * spec.n_random
    seed += int(spec.id.replace(".", ""))  # exercises never share inputs
    torch.manual_seed(seed)
    return spec.make_cases(np.random.default_rng(seed), n_random)


def _run_case(spec: Exercise, fn: Callable, expected: Any, case: Case, index: int) -> str | None:
    """Return None if the learner passes `case`, else the rest of the verdict line."""
    where = f"on {case.kind} case {index}" + (f" ({case.label})" if case.label else "")
    try:
        with _time_limit(spec.timeout_s):
            received = fn(*_clone(case.args))
    except NotImplementedError:
        return "is not implemented yet"
    except CheckerTimeout:
        return f"timed out {where}: your function ran longer than {spec.timeout_s:g} s (an endless loop?)"
    except Exception as err:  # the learner's bug: report it in one line
        return f"failed {where}: your code raised {_describe_exception(err)}"
    finally:
        _remove_hooks(case.args)
    try:
        if spec.compare_values:
            _compare(expected, received, spec.atol, spec.rtol)
        else:
            _compare_structure(expected, received)
    except _Mismatch as mismatch:
        return f"failed {where}: {mismatch.kind} — {mismatch.detail}"
    for invariant in spec.invariants:
        problem = invariant(received, case)
        if problem:
            return f"failed {where}: invariant — {problem}"
    return None


def _remove_hooks(args: tuple) -> None:
    """Undo hooks a learner's function left on a model, so they cannot leak into later cases."""
    for arg in args:
        if hasattr(arg, "reset_hooks"):
            arg.reset_hooks()


def _compare(expected: Any, received: Any, atol: float, rtol: float) -> None:
    if isinstance(expected, torch.Tensor):
        _compare_tensors(expected, received, atol, rtol)
    elif isinstance(expected, (float, int)) and not isinstance(expected, bool):
        _compare_numbers(expected, received, atol, rtol)
    elif isinstance(expected, tuple):
        if not isinstance(received, tuple) or len(received) != len(expected):
            raise _Mismatch("type", f"expected a tuple of {len(expected)} items, got {_describe_value(received)}")
        for exp, rec in zip(expected, received):
            _compare(exp, rec, atol, rtol)
    elif expected != received:
        raise _Mismatch("values", f"expected a {type(expected).__name__}, got {_describe_value(received)}")


def _compare_structure(expected: torch.Tensor, received: Any) -> None:
    """Type, shape and dtype only: for exercises with many right answers (e.g. random samples)."""
    if not isinstance(received, torch.Tensor):
        raise _Mismatch("type", f"expected a torch.Tensor of shape {list(expected.shape)}, got {_describe_value(received)}")
    if received.shape != expected.shape:
        raise _Mismatch("shape", f"expected {list(expected.shape)}, got {list(received.shape)}")
    if received.dtype != expected.dtype:
        raise _Mismatch("dtype", f"expected {expected.dtype}, got {received.dtype}")


def _compare_tensors(expected: torch.Tensor, received: Any, atol: float, rtol: float) -> None:
    _compare_structure(expected, received)
    exp, rec = expected.detach().double(), received.detach().double()
    if torch.equal(exp.isnan(), rec.isnan()) and torch.allclose(rec, exp, atol=atol, rtol=rtol, equal_nan=True):
        return
    error = (rec - exp).abs().nan_to_num(nan=float("inf"))
    flat = int(error.argmax())
    index = list(np.unravel_index(flat, tuple(exp.shape))) if exp.dim() else []
    raise _Mismatch("values", f"largest error {error.flatten()[flat].item():.3g} at index {[int(i) for i in index]}: "
                    f"got {rec.flatten()[flat].item():.4g}, expected {exp.flatten()[flat].item():.4g} "
                    f"(tolerance atol={atol:g}, rtol={rtol:g})")


def _compare_numbers(expected: float, received: Any, atol: float, rtol: float) -> None:
    if isinstance(received, torch.Tensor) and received.numel() == 1:
        received = received.item()
    if isinstance(received, np.generic):
        received = received.item()
    if not isinstance(received, (float, int)) or isinstance(received, bool):
        raise _Mismatch("type", f"expected a number (float), got {_describe_value(received)}")
    if abs(received - expected) > atol + rtol * abs(expected):
        raise _Mismatch("values", f"got {received:.4g}, expected {expected:.4g} "
                        f"(error {abs(received - expected):.3g}; tolerance atol={atol:g}, rtol={rtol:g})")


def _describe_value(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {list(value.shape)}"
    if value is None:
        return "None (did you forget to return?)"
    return f"a {type(value).__name__}"


def _describe_exception(err: Exception) -> str:
    """`TypeError: message (your line 7: `x = q @ k`)`, from the deepest frame outside library code."""
    message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _is_learner_frame(f.filename)]
    if not frames:
        return message
    frame = frames[-1]
    line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
    return f"{message} (your line {frame.lineno}: `{line}`)"


def _is_learner_frame(filename: str) -> bool:
    library = ("site-packages", "dist-packages", f"{os.sep}lib{os.sep}python", _UTILS_DIR)
    return not any(part in filename for part in library)


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Interrupt the learner's function after `seconds` (main thread only, where SIGALRM works)."""
    if not hasattr(signal, "setitimer") or sys.platform == "win32" or _not_main_thread():
        yield
        return

    def _raise(signum, frame):
        raise CheckerTimeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _not_main_thread() -> bool:
    import threading

    return threading.current_thread() is not threading.main_thread()


def _clone(args: tuple) -> tuple:
    """Fresh copies of tensor arguments, so an in-place edit by one function cannot leak into the other."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
