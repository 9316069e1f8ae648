"""Hidden-test checkers: run a learner's function on unseen inputs and print a one-line verdict.

A notebook writes `attention_pattern = check("00.2", attention_pattern)`. The exercise's spec
(utils/exercises/) builds cases the learner has not seen: seeded random inputs, edge cases, and
properties of functions with many right answers. Each case runs the learner's function and the
reference solution (utils/reference/, generated from solutions/) on copies of the same inputs, then
checks, in this order: that the inputs were left unchanged, the output's type and shape, the
exercise's invariants (rows sum to 1, the future is masked), and finally the values at stated
tolerances. A failure whose output equals a known mistake's names that mistake as the likely cause.

Two tiers share the same specs:
- "public" (the default, used in notebooks): fixed seeds, so a learner sees a stable verdict;
- "hidden" (grading): seeds from the COURSE_GRADING_SEED environment variable (it refuses to run
  without one) and three times as many random cases, so a submission cannot be tuned to the public cases.

Every verdict is one line and never contains the expected answer. A check leaves no trace: the checker
models are restored to their state at loading after every case, and the learner's random number
generators, default dtype, grad mode and global module hooks are as they were before the check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import itertools
import json
import linecache
import math
import operator
import os
import random
import signal
import site
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

PUBLIC_SEED = 20261122
TIERS = ("public", "hidden")
GRADING_SEED_VARIABLE = "COURSE_GRADING_SEED"
MESSAGE_LIMIT = 200  # characters of an exception message, or of a source line, in a verdict
RETRY_ALARM_S = 0.5  # after a timeout, interrupt again this often while the learner's code goes on
DIAGNOSIS_TIMEOUT_S = 5.0
_UTILS_DIR = str(Path(__file__).resolve().parent)
FROZEN_DIR = Path(__file__).resolve().parent / "expected"


@dataclass
class Case:
    """One input to an exercise: `args` go to both the learner's function and the reference.

    A "property" case has a `probe(call, case)` instead of a comparison: `call(*args)` runs the
    learner's function (safely), and the probe returns what is wrong, or None.
    """

    kind: str  # "random", "edge" or "property"
    args: tuple
    label: str = ""
    probe: Callable[[Callable[..., Any], Case], str | None] | None = None


@dataclass
class Exercise:
    """What an exercise checks. `make_cases(rng, n_random)` returns the cases for one run.

    `diagnoses` lists known mistakes as (function with the exercise's signature, likely cause): when
    the learner's output fails and equals a mistake's output on that case, the verdict names the cause.
    """

    id: str
    function: str  # the name of the function in the solution notebook
    make_cases: Callable[[np.random.Generator, int], list[Case]]
    n_random: int = 4
    atol: float = 1e-5
    rtol: float = 1e-4
    invariants: list[Callable[[Any, Case], str | None]] = field(default_factory=list)
    timeout_s: float = 20.0
    compare_values: bool = True  # False: only type and shape must match the reference; invariants decide
    diagnoses: list[tuple[Callable, str]] = field(default_factory=list)


@dataclass
class Verdict:
    exercise_id: str
    passed: bool
    message: str
    n_cases: int = 0

    def __str__(self) -> str:
        return self.message


class CheckerTimeout(BaseException):
    """Raised inside a learner's function that runs too long: a BaseException, so `except Exception` cannot swallow it."""


class ExerciseRequired(Exception):
    """A failed check in a release without reference solutions: the cells below cannot run."""

    def __init__(self, exercise_id: str, function: str):
        super().__init__(f"solve exercise {exercise_id} ({function}) above first: the cells below need it")

    def _render_traceback_(self) -> list[str]:
        """IPython shows this one line instead of a traceback (and "Run All" stops here)."""
        return [str(self)]


class GradingSeedError(RuntimeError):
    """The hidden tier was asked for without a usable grading seed."""


class _Mismatch(Exception):
    """A learner output that differs from the reference: `kind` is type, shape, dtype, device or values."""

    def __init__(self, kind: str, detail: str, output: str = ""):
        super().__init__(detail)
        self.kind, self.detail, self.output = kind, detail, output

    def line(self) -> str:
        return f"{self.output + ': ' if self.output else ''}{self.kind} — {self.detail}"


class _Failure(Exception):
    """The rest of a failing verdict line, after the exercise id."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


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


def derive_seed(base: int, *parts: str) -> int:
    """A seed from `base` and names (e.g. an exercise id), stable across processes and platforms (63 bits)."""
    text = "\x1f".join([str(int(base)), *(str(part) for part in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


# --- the entry points -------------------------------------------------------------------------------
def check(exercise_id: str, fn: Callable, *, tier: str | None = None) -> Callable:
    """Check `fn` on exercise `exercise_id`, print the verdict line, and return the function later cells should use.

    Passed: `fn` itself. Failed: the course's reference solution (with one more line saying so), or,
    in a student release without reference solutions, an ExerciseRequired error that IPython shows
    as one line. The tier defaults to COURSE_CHECK_TIER (or "public"). If COURSE_CHECK_LOG names a
    file, the verdict is also appended to it as a JSON line: the hook a grading run collects results through.
    """
    verdict = run_check(exercise_id, fn, tier=tier or os.environ.get("COURSE_CHECK_TIER", "public"))
    print(verdict)
    if log := os.environ.get("COURSE_CHECK_LOG"):
        with open(log, "a") as file:
            file.write(json.dumps(dataclasses.asdict(verdict)) + "\n")
    if verdict.passed:
        return fn
    spec = exercises().get(exercise_id)
    if spec is None:
        return fn
    try:
        solution = reference_function(spec)
    except ModuleNotFoundError as err:
        if not _reference_is_missing(err):
            raise
        raise ExerciseRequired(exercise_id, spec.function) from None
    print(f"{exercise_id}: the cells below use the course's reference solution until yours passes")
    return solution


def run_check(exercise_id: str, fn: Callable, *, tier: str = "public", reference: Callable | None = None) -> Verdict:
    """Like `check`, but return the Verdict. `reference` overrides the generated reference solution."""
    known = exercises()
    if exercise_id not in known:
        return Verdict(str(exercise_id), False, f"there is no exercise {exercise_id!r}; known exercises: {', '.join(known)}")
    if not callable(fn):
        return Verdict(exercise_id, False, f"{exercise_id}: check expects your function itself, "
                       f"e.g. check({exercise_id!r}, my_function); got {_type_name(fn)}")
    if tier not in TIERS:
        return Verdict(exercise_id, False, f"{exercise_id}: tier must be one of {TIERS}; got {tier!r}")
    spec = known[exercise_id]
    if tier == "hidden" and reference is None and not _has_reference(spec):
        return Verdict(exercise_id, False, f"{exercise_id}: {_NO_HIDDEN_TIER}")
    try:
        seed = tier_seed(spec, tier)
    except GradingSeedError as err:
        return Verdict(exercise_id, False, f"{exercise_id}: NOT GRADED — {err}")
    with _isolated(seed) as learner_globals:
        cases = cases_for(spec, tier)
        expected = _expected_outputs(spec, cases, tier, reference)
        if isinstance(expected, str):
            return Verdict(exercise_id, False, f"{exercise_id}: {expected}")
        for index, (case, answer) in enumerate(zip(cases, expected), start=1):
            failure = _run_case(spec, fn, answer, case, index)
            learner_globals.reset()
            restore_pristine(case.args)
            if failure is not None:
                return Verdict(exercise_id, False, f"{exercise_id} {failure}", len(cases))
    return Verdict(exercise_id, True, f"{exercise_id} passed ({len(cases)} {tier} cases)", len(cases))


def tier_seed(spec: Exercise, tier: str) -> int:
    """The seed `spec`'s cases are drawn from: the public seed, or the grading seed (required) for the hidden tier."""
    if tier == "public":
        return derive_seed(PUBLIC_SEED, spec.id)
    value = os.environ.get(GRADING_SEED_VARIABLE, "").strip()
    if not value:
        raise GradingSeedError(f"the hidden tier needs {GRADING_SEED_VARIABLE} set to the secret grading seed "
                               "(an integer); it never falls back to a fixed seed")
    try:
        return derive_seed(int(value), spec.id)
    except ValueError:
        raise GradingSeedError(f"{GRADING_SEED_VARIABLE} must be an integer") from None


def cases_for(spec: Exercise, tier: str) -> list[Case]:
    """The cases a run of `spec` uses: the same every time for a tier (and grading seed)."""
    seed = tier_seed(spec, tier)
    n_random = spec.n_random if tier == "public" else 3 * spec.n_random
    with _isolated_rng(seed):
        restore_pristine()
        cases = spec.make_cases(np.random.default_rng(seed), n_random)
        restore_pristine()
    return cases


def _expected_outputs(spec: Exercise, cases: list[Case], tier: str, reference: Callable | None) -> list | str:
    """The reference's outputs on `cases`; in a student release (no reference), the frozen public ones."""
    if reference is None:
        try:
            reference = reference_function(spec)
        except ModuleNotFoundError as err:
            if not _reference_is_missing(err):
                raise
            if tier == "hidden":
                return _NO_HIDDEN_TIER
            return frozen_expected(spec)
    outputs = []
    for case in cases:
        outputs.append(reference(*_copy(case.args)))
        restore_pristine(case.args)
    return outputs


def frozen_expected(spec: Exercise) -> list:
    """Expected public-tier outputs stored by `python -m utils.authoring.release` (used when utils/reference/ is absent)."""
    return torch.load(FROZEN_DIR / f"nb{spec.id.split('.')[0]}.pt", weights_only=False)[spec.id]


def reference_function(spec: Exercise) -> Callable:
    """The solution's function for `spec`, from the module that utils.authoring.build generates."""
    module = importlib.import_module(f"utils.reference.nb{spec.id.split('.')[0]}")
    return getattr(module, spec.function)


def reference(exercise_id: str) -> Callable:
    """The reference solution of `exercise_id` (for diagnoses: a student release has none, and they are skipped)."""
    return reference_function(exercises()[exercise_id])


def _reference_is_missing(err: ModuleNotFoundError) -> bool:
    return (err.name or "").startswith("utils.reference")


def _has_reference(spec: Exercise) -> bool:
    """Whether the reference solutions are here (the self-study copy) or not (a student release)."""
    try:
        reference_function(spec)
    except ModuleNotFoundError as err:
        if not _reference_is_missing(err):
            raise
        return False
    return True


_NO_HIDDEN_TIER = "the hidden tier needs the reference solutions (utils/reference/), which a student release leaves out"


# --- one case ---------------------------------------------------------------------------------------
def _run_case(spec: Exercise, fn: Callable, expected: Any, case: Case, index: int) -> str | None:
    """Return None if the learner passes `case`, else the rest of the verdict line."""
    where = f"on {case.kind} case {index}" + (f" ({case.label})" if case.label else "")
    try:
        if case.probe is not None:
            return _run_probe(spec, fn, case, where)
        given = _copy(case.args)
        received = _call(spec, fn, given, where)
        _check_untouched(fn, case.args, given, where)
        return _judge(spec, expected, received, case, where)
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


# --- inputs changed in place ------------------------------------------------------------------------
def _check_untouched(fn: Callable, pristine: tuple, given: tuple, where: str) -> None:
    """Fail if the learner's function changed an argument, a checker model, or left a global hook."""
    names = _parameter_names(fn, len(given))
    for name, before, after in zip(names, pristine, given):
        if not _same_value(before, after):
            raise _Failure(f"failed {where}: your function changed `{name}` in place; leave your inputs unchanged "
                           "(work on a copy, and avoid `+=` and methods ending in `_` such as `mul_`)")
    for model, snapshot in _snapshots_in(given):
        change = snapshot.change()
        if change:
            owner = _model_name(model, names, given)
            if change == "hooks":
                raise _Failure(f"failed {where}: your function left a hook on `{owner}`; use `{owner}.run_with_hooks(...)` "
                               f"or `with {owner}.hooks(...):`, which remove their hooks")
            advice = "ablate with a hook instead, or restore them" if change == "weights" else "restore what you change"
            raise _Failure(f"failed {where}: your function changed the {change} of `{owner}` in place; {advice} before returning")
    if any(_global_hooks().values()):
        raise _Failure(f"failed {where}: your function left a global module hook registered; remove it before returning")
    if _ACTIVE:
        _ACTIVE[-1].reset()  # a default dtype or grad mode the learner's code set must not change what comes next


def _parameter_names(fn: Callable, count: int) -> list[str]:
    """The names of `fn`'s first `count` positional parameters ("argument 3" where there is none)."""
    try:
        parameters = [p.name for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    return [parameters[i] if i < len(parameters) else f"argument {i + 1}" for i in range(count)]


def _model_name(model: torch.nn.Module, names: list[str], given: tuple) -> str:
    for name, value in zip(names, given):
        if value is model:
            return name
        if getattr(value, "model", None) is model:
            return f"{name}.model"
    return "the checker's model"


def _same_value(before: Any, after: Any) -> bool:
    """Whether a copy handed to the learner still equals the pristine value it was copied from."""
    if isinstance(before, torch.Tensor):
        return type(after) is type(before) and _same_tensor(before, after)
    if _is_cache(before):
        keys = list(before.cache_dict)
        return (_is_cache(after) and list(after.cache_dict) == keys
                and all(_same_tensor(before.cache_dict[k], after.cache_dict[k]) for k in keys))
    if isinstance(before, (tuple, list)):
        return type(after) is type(before) and len(after) == len(before) and all(map(_same_value, before, after))
    if isinstance(before, dict):
        return type(after) is dict and after.keys() == before.keys() and all(_same_value(before[k], after[k]) for k in before)
    return True  # ints, ranges, generators (consumed on purpose), models (checked against their snapshot)


def _same_tensor(before: torch.Tensor, after: Any) -> bool:
    if type(after) is not torch.Tensor or after.shape != before.shape or after.dtype != before.dtype:
        return False
    if after.device != before.device:
        return False
    if torch.equal(before, after):
        return True
    return bool(((before == after) | (before.isnan() & after.isnan())).all()) if before.is_floating_point() else False


def _is_cache(value: Any) -> bool:
    return type(value).__name__ == "ActivationCache" and isinstance(getattr(value, "cache_dict", None), dict)


def _copy(args: tuple, generators: bool = True) -> tuple:
    """Fresh copies of tensors (also inside caches, tuples and lists) and of generators, so no call sees another's edits."""
    return tuple(_copy_value(a, generators) for a in args)


def _copy_value(value: Any, generators: bool = True) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if generators and isinstance(value, torch.Generator):
        return torch.Generator(device=value.device).set_state(value.get_state())
    if _is_cache(value):
        return type(value)({k: v.clone() for k, v in value.cache_dict.items()}, value.model,
                           has_batch_dim=value.has_batch_dim)
    if isinstance(value, (tuple, list)):
        return type(value)(_copy_value(v, generators) for v in value)
    if isinstance(value, dict):
        return {k: _copy_value(v, generators) for k, v in value.items()}
    return value


# --- pristine checker models ------------------------------------------------------------------------
_HOOK_DICTS = tuple(name for name, value in vars(torch.nn.Module()).items() if "hooks" in name and isinstance(value, dict))
_MODULE_DICTS = ("_parameters", "_buffers", "_modules") + _HOOK_DICTS
_LENS_HOOK_LISTS = ("fwd_hooks", "bwd_hooks")  # TransformerLens HookPoints track their handles here
_MODULE_ATTRIBUTES = ("training", "_is_full_backward_hook", "forward")  # "forward": an instance-level override


class _ModelSnapshot:
    """Everything a learner's function could leave changed on a model: weights, hooks, modules, modes, config.

    A model has hundreds of modules with a dozen hook dicts each, checked after every case: the common
    "nothing changed" path compares them in bulk (map over C-level calls), and only a change is looked at closely.
    """

    def __init__(self, model: torch.nn.Module):
        self.modules = list(model.modules())
        self.dicts = [(m, name, m.__dict__[name], dict(m.__dict__[name])) for m in self.modules for name in _MODULE_DICTS
                      if isinstance(m.__dict__.get(name), dict)]  # (module, name, the dict itself, a copy of it)
        self.lists = [(m, name, list(m.__dict__[name])) for m in self.modules for name in _LENS_HOOK_LISTS
                      if isinstance(m.__dict__.get(name), list)]
        self.attributes = [(m, {k: m.__dict__[k] for k in _MODULE_ATTRIBUTES if k in m.__dict__}) for m in self.modules]
        tensors = {id(t): t for m in self.modules for t in [*m._parameters.values(), *m._buffers.values()] if t is not None}
        self.tensors = [(t, t.detach().clone(), t.requires_grad) for t in tensors.values()]
        self.config = getattr(model, "cfg", None)
        self.config_values = dict(vars(self.config)) if hasattr(self.config, "__dict__") else None
        self._dict_owners = [m.__dict__ for m, *_ in self.dicts]
        self._dict_names = [name for _, name, *_ in self.dicts]
        self._dict_originals = [original for *_, original, _ in self.dicts]
        self._dict_lengths = [len(saved) for *_, saved in self.dicts]
        self._dict_filled = [(original, saved) for *_, original, saved in self.dicts if saved]
        self._list_owners = [m.__dict__ for m, *_ in self.lists]
        self._list_names = [name for _, name, _ in self.lists]
        self._list_saved = [saved for *_, saved in self.lists]

    def change(self) -> str | None:
        """What differs from the snapshot: "weights", "hooks", "modules", "config", or None."""
        if not self._tensors_intact():
            return "weights"
        if not self._dicts_intact():
            for module, name, original, saved in self.dicts:
                if not _same_dict(module.__dict__.get(name), original, saved):
                    return "hooks" if "hooks" in name else "modules" if name == "_modules" else "weights"
        if not self._lists_intact():
            return "hooks"
        if any(m.__dict__.get("forward") is not saved.get("forward") for m, saved in self.attributes):
            return "modules"
        if self.config_values is not None and not _same_config(vars(self.config), self.config_values):
            return "config"
        return None

    def restore(self) -> None:
        """Put everything back as it was when the model was loaded (the objects TransformerLens holds stay the same)."""
        if not self._dicts_intact():
            for module, name, original, saved in self.dicts:
                if not _same_dict(module.__dict__.get(name), original, saved):
                    module.__dict__[name] = original  # the same object: handles TransformerLens holds still point into it
                    original.clear()
                    original.update(saved)
        if not self._lists_intact():
            for module, name, saved in self.lists:
                module.__dict__[name] = list(saved)
        for module, attributes in self.attributes:
            if "forward" not in attributes:
                module.__dict__.pop("forward", None)
            module.__dict__.update(attributes)
        with torch.no_grad():
            for tensor, saved, requires_grad in self.tensors:
                if tensor.shape != saved.shape or tensor.dtype != saved.dtype or tensor.device != saved.device:
                    tensor.data = saved.clone()
                elif not torch.equal(tensor, saved):
                    tensor.copy_(saved)
                tensor.grad = None
                tensor.requires_grad_(requires_grad)
        if self.config_values is not None and not _same_config(vars(self.config), self.config_values):
            vars(self.config).clear()
            vars(self.config).update(self.config_values)

    def _tensors_intact(self) -> bool:
        return all(t.shape == s.shape and t.dtype == s.dtype and t.device == s.device and torch.equal(t.detach(), s)
                   for t, s, _ in self.tensors)

    def _dicts_intact(self) -> bool:
        if any(map(operator.is_not, map(dict.get, self._dict_owners, self._dict_names), self._dict_originals)):
            return False
        if list(map(len, self._dict_originals)) != self._dict_lengths:
            return False
        return all(_same_dict(original, original, saved) for original, saved in self._dict_filled)

    def _lists_intact(self) -> bool:
        current = list(map(dict.get, self._list_owners, self._list_names))
        if not all(map(operator.is_, map(type, current), itertools.repeat(list))):
            return False
        if list(map(len, current)) != list(map(len, self._list_saved)):
            return False
        return all(all(map(operator.is_, now, saved)) for now, saved in zip(current, self._list_saved) if saved)


def _same_dict(current: Any, original: dict, saved: dict) -> bool:
    """Whether a module's dict is still `original` holding exactly the entries of `saved` (fast when both are empty)."""
    if current is not original or len(current) != len(saved):
        return False
    return not saved or all(current.get(k, saved) is v for k, v in saved.items())


def _same_config(current: dict, saved: dict) -> bool:
    try:
        return current.keys() == saved.keys() and all(current[k] is v or bool(current[k] == v) for k, v in saved.items())
    except Exception:  # a value whose comparison fails (an array, a tensor): changed
        return False


_PRISTINE: dict[int, tuple[torch.nn.Module, _ModelSnapshot]] = {}


def keep_pristine(model: torch.nn.Module) -> torch.nn.Module:
    """Snapshot a checker model as it is now; every check restores it to this state after each case."""
    _PRISTINE[id(model)] = (model, _ModelSnapshot(model))
    return model


def restore_pristine(args: tuple | None = None) -> None:
    """Restore checker models to their snapshots (weights, hooks, modules, modes, config): all, or those `args` reach.

    A check restores every model before its first case and after its last; between cases, only the models
    a case hands to the learner (directly, or as a cache's `.model`), since only those are used again.
    """
    for _, snapshot in (_PRISTINE.values() if args is None else _snapshots_in(args)):
        snapshot.restore()


def _snapshots_in(args: Any) -> list[tuple[torch.nn.Module, _ModelSnapshot]]:
    """The registered checker models that `args` hold: as an argument, inside a tuple or list, or as a cache's model."""
    found: dict[int, tuple[torch.nn.Module, _ModelSnapshot]] = {}

    def visit(value: Any) -> None:
        if id(value) in _PRISTINE:
            found[id(value)] = _PRISTINE[id(value)]
        elif _is_cache(value):
            visit(value.model)
        elif isinstance(value, (tuple, list)):
            for item in value:
                visit(item)

    visit(args)
    return list(found.values())


# --- the learner's global state ---------------------------------------------------------------------
def _global_hooks() -> dict[str, dict]:
    """torch's global module hooks (register_module_forward_hook and friends), by name."""
    from torch.nn.modules import module

    return {name: value for name, value in vars(module).items()
            if name.startswith("_global_") and name.endswith("hooks") and isinstance(value, dict)}


class _LearnerGlobals:
    """The learner's global settings: a check runs with torch's defaults and no global module hooks, then puts these back."""

    def __init__(self):
        self.dtype, self.grad = torch.get_default_dtype(), torch.is_grad_enabled()
        self.hooks = {name: dict(hooks) for name, hooks in _global_hooks().items()}

    def reset(self) -> None:
        """The checker's settings, whatever the learner's notebook or function set: float32, grad mode on, no global hooks."""
        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)
        for hooks in _global_hooks().values():
            hooks.clear()

    def put_back(self) -> None:
        self.reset()
        torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(self.grad)
        for name, hooks in _global_hooks().items():
            hooks.update(self.hooks.get(name, {}))


_ACTIVE: list[_LearnerGlobals] = []  # the check in progress (a stack, in case a check runs inside another)


@contextlib.contextmanager
def _isolated_rng(seed: int):
    """Seed torch, numpy and random for a block, and give the learner's generators back untouched afterwards."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            torch.manual_seed(seed)
            np.random.seed(seed % 2 ** 32)
            random.seed(seed)
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


@contextlib.contextmanager
def _isolated(seed: int):
    """A whole check: seeded generators, no global module hooks; the learner's state comes back afterwards."""
    learner_globals = _LearnerGlobals()
    with _isolated_rng(seed):
        _ACTIVE.append(learner_globals)
        try:
            learner_globals.reset()
            restore_pristine()
            yield learner_globals
        finally:
            _ACTIVE.remove(learner_globals)
            restore_pristine()
            learner_globals.put_back()


# --- structure and values ---------------------------------------------------------------------------
_NUMPY_NUMBERS = (np.floating, np.integer)


def _check_structure(expected: Any, received: Any) -> Any:
    """Type, shape, dtype and device of `received` against `expected`; returns it normalised (numbers as plain numbers)."""
    if isinstance(expected, torch.Tensor):
        return _check_tensor_structure(expected, received)
    if isinstance(expected, (float, int)) and not isinstance(expected, bool):
        return _as_number(received)
    if isinstance(expected, tuple):
        if not isinstance(received, tuple) or tuple.__len__(received) != len(expected):
            raise _Mismatch("type", f"expected a tuple of {len(expected)} items, got {_describe_value(received)}")
        items = []
        for index, item in enumerate(expected):
            try:
                items.append(_check_structure(item, tuple.__getitem__(received, index)))
            except _Mismatch as mismatch:
                raise _Mismatch(mismatch.kind, mismatch.detail, f"output {index + 1} of {len(expected)}") from None
        return tuple(items)
    if type(received) is not type(expected):
        raise _Mismatch("type", f"expected a {_type_name(expected)}, got {_describe_value(received)}")
    return received


def _check_tensor_structure(expected: torch.Tensor, received: Any) -> torch.Tensor:
    if type(received) is not torch.Tensor:
        if isinstance(received, torch.Tensor):
            raise _Mismatch("type", f"expected a plain torch.Tensor, got a {_type_name(received)} (a subclass of "
                            "torch.Tensor); return a plain tensor")
        raise _Mismatch("type", f"expected a torch.Tensor of shape {list(expected.shape)}, got {_describe_value(received)}")
    if received.device != expected.device:
        raise _Mismatch("device", f"expected a tensor on {expected.device}, got one on {received.device}")
    if received.layout != torch.strided:
        raise _Mismatch("layout", f"expected a dense tensor, got a {received.layout} one; return a dense tensor")
    if received.shape != expected.shape:
        raise _Mismatch("shape", f"expected {list(expected.shape)}, got {list(received.shape)}")
    if received.dtype != expected.dtype:
        raise _Mismatch("dtype", f"expected {expected.dtype}, got {received.dtype}")
    return received.detach()


def _as_number(received: Any) -> float | int:
    """A plain float or int from a float, int, numpy scalar or 0-d tensor; anything else is a type mismatch."""
    kind = type(received)
    if kind in (float, int):
        return received
    if isinstance(received, _NUMPY_NUMBERS) and kind.__module__ == "numpy":
        return received.item()
    if kind is torch.Tensor:
        if received.device.type != "cpu":
            raise _Mismatch("type", f"expected a number (float), got a tensor on the {received.device.type} device; "
                            "return a plain float")
        if received.dim() == 0 and not received.is_complex() and received.dtype != torch.bool:
            return received.item()
        raise _Mismatch("type", f"expected a number (float), got {_describe_value(received)}; return a plain float "
                        "(e.g. with .item())")
    if not isinstance(received, bool) and isinstance(received, (float, int, np.generic, torch.Tensor)):
        raise _Mismatch("type", f"expected a plain number (float), got a {_type_name(received)}; "
                        "return a plain float, e.g. float(x)")
    raise _Mismatch("type", f"expected a number (float), got {_describe_value(received)}")


def _compare_values(expected: Any, received: Any, atol: float, rtol: float) -> None:
    """Values of a structurally matching output; the message says how far off and which way, never the target."""
    if isinstance(expected, torch.Tensor):
        _compare_tensor_values(expected, received, atol, rtol)
    elif isinstance(expected, (float, int)) and not isinstance(expected, bool):
        _compare_number_values(expected, received, atol, rtol)
    elif isinstance(expected, tuple):
        for index, (exp, rec) in enumerate(zip(expected, received)):
            try:
                _compare_values(exp, rec, atol, rtol)
            except _Mismatch as mismatch:
                raise _Mismatch(mismatch.kind, mismatch.detail, f"output {index + 1} of {len(expected)}") from None
    elif not (expected is received or expected == received):
        raise _Mismatch("values", "yours differs from the reference")


def _tolerance(atol: float, rtol: float) -> str:
    return f"(tolerance atol={atol:g}, rtol={rtol:g})"


def _compare_number_values(expected: float, received: float, atol: float, rtol: float) -> None:
    if math.isnan(expected) or math.isnan(received):
        if math.isnan(expected) and math.isnan(received):
            return
        raise _Mismatch("values", "yours is nan (not a number)" if math.isnan(received) else "yours differs from the reference")
    if received == expected:
        return
    if math.isinf(received):
        raise _Mismatch("values", f"yours is {received} (not a finite number)")
    error = received - expected
    if abs(error) > atol + rtol * abs(expected):
        raise _Mismatch("values", _off_by(error, atol, rtol))


def _off_by(error: float, atol: float, rtol: float) -> str:
    """How far off a single number is, and which way: "yours is 0.42 too high (tolerance ...)"."""
    return f"yours is {_amount(abs(error))} {'too high' if error > 0 else 'too low'} {_tolerance(atol, rtol)}"


def _compare_tensor_values(expected: torch.Tensor, received: torch.Tensor, atol: float, rtol: float) -> None:
    exp, rec = expected.detach(), received.detach()
    if exp.is_complex():
        exp, rec = torch.view_as_real(exp.resolve_conj()), torch.view_as_real(rec.resolve_conj())
    exp, rec = exp.double(), rec.double()
    for bad, what in ((rec.isnan() & ~exp.isnan(), "nan{} (not a number)"),
                      (rec.isinf() & (rec != exp), "inf{} (not a finite number)"),
                      (exp.isnan() & ~rec.isnan(), "a value{} that differs from the reference")):
        if bad.any():
            where = f" at index {_index_of(int(bad.flatten().nonzero()[0]), exp.shape)}" if exp.dim() else ""
            raise _Mismatch("values", f"yours has {what.format(where)}")
    close = torch.isclose(rec, exp, atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return
    signed = (rec - exp).where(~close, 0.0).nan_to_num(nan=0.0, posinf=math.inf, neginf=-math.inf)
    flat = int(signed.abs().flatten().argmax())
    error = signed.flatten()[flat].item()
    if exp.dim() == 0:
        raise _Mismatch("values", _off_by(error, atol, rtol))
    raise _Mismatch("values", f"largest error {_amount(abs(error))} at index {_index_of(flat, exp.shape)}, "
                    f"{'yours too large' if error > 0 else 'yours too small'} {_tolerance(atol, rtol)}")


def _amount(size: float) -> str:
    """An error's size in a verdict: two significant digits (whole numbers from 100 to a million, not 1.2e+02)."""
    return f"{size:.0f}" if 100 <= size < 1e6 else f"{size:.2g}"


def _index_of(flat: int, shape: torch.Size) -> list[int]:
    return [int(i) for i in np.unravel_index(flat, tuple(shape))]


def _type_name(value: Any) -> str:
    return _shorten(getattr(type(value), "__name__", "object"), 60)


def _describe_value(value: Any) -> str:
    if type(value) is torch.Tensor:
        return f"a tensor of shape {list(value.shape)}"
    if value is None:
        return "None (did you forget to return?)"
    if type(value) is tuple:
        return f"a tuple of {len(value)} items"
    return f"a {_type_name(value)}"


# --- exceptions -------------------------------------------------------------------------------------
def _describe_exception(err: BaseException, learner_lines: bool = True) -> str:
    """`TypeError: message (your line 7: `x = q @ k`)`: one line, the deepest frame of the learner's own code."""
    lines = _safe_str(err).strip().splitlines()
    text = _shorten(lines[0].strip() if lines else "", MESSAGE_LIMIT)
    message = f"{_type_name(err)}: {text}" if text else _type_name(err)
    frame = _learner_frame(err) if learner_lines else None
    if frame is None:
        return message
    filename, lineno = frame
    line = _shorten(linecache.getline(filename, lineno).strip(), MESSAGE_LIMIT)
    return f"{message} (your line {lineno}: `{line}`)" if line else f"{message} (your line {lineno})"


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
