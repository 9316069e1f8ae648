"""One case: run the learner's function on it (or its probe), judge the output, and name a known mistake if one fits."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from utils.checking.compare import _check_structure, _compare_values, _Mismatch
from utils.checking.failures import CheckerTimeout, _describe_exception, _Failure, _time_limit, _Timer
from utils.checking.isolation import _check_untouched, _copy, restore_pristine
from utils.checking.spec import Case, Exercise

DIAGNOSIS_TIMEOUT_S = 5.0


# --- one case ---------------------------------------------------------------------------------------
def _run_case(spec: Exercise, fn: Callable, expected_for: Callable[[int], Any], case: Case, index: int) -> str | None:
    """Return None if the learner passes `case` (the `index`-th, from 1), else the rest of the verdict line. The
    expected output is asked of `expected_for` only after the learner's function has returned."""
    where = f"on {case.kind} case {index}" + (f" ({case.label})" if case.label else "")
    try:
        if case.probe is not None:
            return _run_probe(spec, fn, case, where)
        given = _copy(case.args)
        received = _call(spec, fn, given, where)
        _check_untouched(fn, case.args, given, where)
        return _judge(spec, expected_for(index - 1), received, case, where)
    except _Failure as failure:
        return failure.line


def _judge(spec: Exercise, expected: Any, received: Any, case: Case, where: str) -> str | None:
    """Structure first, then invariants, then values; a failure may name a known mistake as its likely cause."""
    try:
        received = _check_structure(expected, received)
    except _Mismatch as mismatch:
        return f"failed {where}: {mismatch.line()}{_diagnosis(spec, case, received)}"
    for invariant in spec.invariants:
        try:
            problem = invariant(received, case)
        except Exception as err:  # an output the invariant cannot read: still the learner's to fix
            problem = f"your output could not be checked ({_describe_exception(err, learner_lines=False)})"
        if problem:
            return f"failed {where}: invariant — {problem}{_diagnosis(spec, case, received)}"
    if spec.compare_values:
        try:
            _compare_values(expected, received, spec.atol, spec.rtol)
        except _Mismatch as mismatch:
            return f"failed {where}: {mismatch.line()}{_diagnosis(spec, case, received)}"
    return None


def _run_probe(spec: Exercise, fn: Callable, case: Case, where: str) -> str | None:
    """Run a property case: its probe calls the learner's function as often as it needs."""
    def call(*args: Any) -> Any:
        given = _copy(args, generators=False)  # a probe watches its generators advance
        received = _call(spec, fn, given, where)
        _check_untouched(fn, args, given, where)
        return received

    try:
        problem = case.probe(call, case)
    except _Failure:
        raise
    except Exception as err:
        problem = f"your output could not be checked ({_describe_exception(err, learner_lines=False)})"
    return None if problem is None else f"failed {where}: {problem}"


def _call(spec: Exercise, fn: Callable, args: tuple, where: str) -> Any:
    """The learner's output on `args`, or a _Failure whose line says why there is none."""
    timer = _Timer()
    timed_out = _Failure(f"timed out {where}: your function ran longer than {spec.timeout_s:g} s (an endless loop?)")
    try:
        with _time_limit(spec.timeout_s, timer):
            received = fn(*args)
    except CheckerTimeout:
        raise timed_out from None
    except BaseException as err:  # the learner's bug, whatever it is (SystemExit too): one line
        if timer.fired:
            raise timed_out from None
        if _raised_by_stub(err, fn):
            raise _Failure("is not implemented yet") from None
        raise _Failure(f"failed {where}: your code raised {_describe_exception(err)}") from None
    if timer.fired:  # the learner's code caught the timeout and carried on
        raise timed_out
    return received


def _raised_by_stub(err: BaseException, fn: Callable) -> bool:
    """A NotImplementedError raised by the body of `fn` itself (not by a helper it calls)."""
    if not isinstance(err, NotImplementedError):
        return False
    try:
        function = inspect.unwrap(fn)
    except ValueError:
        function = fn
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return code is not None and tb is not None and tb.tb_frame.f_code is code


def _diagnosis(spec: Exercise, case: Case, received: Any) -> str:
    """"; likely cause: ..." if `received` equals a known mistake's output on `case`, else ""."""
    for mistake, cause in spec.diagnoses:
        try:
            with _time_limit(DIAGNOSIS_TIMEOUT_S, _Timer()):
                wrong = mistake(*_copy(case.args))
        except BaseException:  # e.g. no reference solution in a student release: no diagnosis
            continue
        finally:
            restore_pristine(case.args)
        if _matches(wrong, received, spec.atol, spec.rtol):
            return f"; likely cause: {cause}"
    return ""


def _matches(wrong: Any, received: Any, atol: float, rtol: float) -> bool:
    try:
        _compare_values(wrong, _check_structure(wrong, received), atol, rtol)
    except _Mismatch:
        return False
    return True
