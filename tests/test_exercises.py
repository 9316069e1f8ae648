"""Every checker accepts its solution (in both tiers) and rejects each known-wrong implementation."""

import importlib
import pkgutil

import pytest

import tests.known_wrong
from utils.checking import exercises, reference_function, run_check

WRONG = {exercise_id: wrong
         for module in pkgutil.iter_modules(tests.known_wrong.__path__)
         for exercise_id, wrong in importlib.import_module(f"tests.known_wrong.{module.name}").WRONG.items()}


def test_every_exercise_has_at_least_three_known_wrong_implementations():
    assert sorted(WRONG) == sorted(exercises())
    assert all(len(wrong) >= 3 for wrong in WRONG.values())


@pytest.mark.parametrize("exercise_id", sorted(exercises()))
@pytest.mark.parametrize("tier", ["public", "hidden"])
def test_solution_passes(exercise_id, tier):
    verdict = run_check(exercise_id, reference_function(exercises()[exercise_id]), tier=tier)
    assert verdict.passed, verdict.message


@pytest.mark.parametrize(("exercise_id", "wrong"), [(i, fn) for i, fns in sorted(WRONG.items()) for fn in fns],
                         ids=lambda x: getattr(x, "__name__", x))
def test_known_wrong_implementation_is_rejected(exercise_id, wrong):
    verdict = run_check(exercise_id, wrong)
    assert not verdict.passed
    assert verdict.message.startswith(f"{exercise_id} failed on "), verdict.message
