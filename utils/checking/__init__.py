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

import dataclasses
import importlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from utils.checking.failures import CheckerTimeout, _type_name
from utils.checking.isolation import _copy, _isolated, _isolated_rng, keep_pristine, restore_pristine
from utils.checking.judge import _run_case
from utils.checking.spec import Case, Exercise, Verdict, catalog
from utils.seeds import derive_seed  # the course's one seed derivation (re-exported here)

PUBLIC_SEED = 20261122
TIERS = ("public", "hidden")
GRADING_SEED_VARIABLE = "COURSE_GRADING_SEED"
FROZEN_DIR = Path(__file__).resolve().parents[1] / "expected"


class ExerciseRequired(Exception):
    """A failed check in a release without reference solutions: the cells below cannot run."""

    def __init__(self, exercise_id: str, function: str):
        super().__init__(f"solve exercise {exercise_id} ({function}) above first: the cells below need it")

    def _render_traceback_(self) -> list[str]:
        """IPython shows this one line instead of a traceback (and "Run All" stops here)."""
        return [str(self)]


class GradingSeedError(RuntimeError):
    """The hidden tier was asked for without a usable grading seed."""


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
        expected_for = _expected_outputs(spec, cases, tier, reference, learner_globals, seed)
        if isinstance(expected_for, str):
            return Verdict(exercise_id, False, f"{exercise_id}: {expected_for}")
        for index, case in enumerate(cases, start=1):
            failure = _run_case(spec, fn, expected_for, case, index)
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


def reference_outputs(spec: Exercise, tier: str = "public") -> list:
    """The reference's outputs on every case of `tier`, computed exactly as a check computes them (what a student
    release freezes: utils.authoring.release)."""
    seed = tier_seed(spec, tier)
    with _isolated(seed) as learner_globals:
        cases = cases_for(spec, tier)
        expected_for = _expected_outputs(spec, cases, tier, reference_function(spec), learner_globals, seed)
        return [expected_for(index) for index in range(len(cases))]


def _expected_outputs(spec: Exercise, cases: list[Case], tier: str, reference: Callable | None,
                      learner_globals, seed: int) -> Callable[[int], Any] | str:
    """Case index -> the reference's output on that case; in a student release (no reference), the frozen public ones.

    The reference runs on a case only once the learner's function has returned on it, and is looked up afresh each
    time: while the learner's function runs, no frame below it holds an expected output or the reference solution
    (in a grading run, importing the reference is refused while learner code is on the stack). It runs with
    generators seeded for that case alone, so what the learner's function drew cannot change its output, and a
    release freezes the outputs a live check computes (`reference_outputs`)."""
    if reference is None and not _has_reference(spec):
        return _NO_HIDDEN_TIER if tier == "hidden" else frozen_expected(spec).__getitem__

    def expected_for(index: int) -> Any:
        case = cases[index]
        learner_globals.reset()  # whatever the learner's call left (default dtype, grad mode, global hooks)
        restore_pristine(case.args)
        solution = reference if reference is not None else reference_function(spec)
        with _isolated_rng(derive_seed(seed, "reference", index)):
            output = solution(*_copy(case.args))
        restore_pristine(case.args)
        return output

    return expected_for


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
