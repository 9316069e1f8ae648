"""Every verdict the checker framework can give, produced on a small synthetic exercise."""

import time

import numpy as np
import pytest
import torch

from utils import checking
from utils.checking import Case, Exercise, run_check


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def _cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", (torch.from_numpy(rng.standard_normal((3, 4))).float(),)) for _ in range(n_random)]
    return cases + [Case("edge", (torch.zeros(1, 1),), "a 1x1 input")]


def _positive_sum(out: torch.Tensor, case: Case) -> str | None:
    return "the output must not be exactly zero" if out.abs().sum() == 0 and case.args[0].abs().sum() > 0 else None


@pytest.fixture
def exercise():
    spec = checking.register(Exercise("99.1", "double", _cases, n_random=3, invariants=[_positive_sum], timeout_s=1.0))
    yield spec
    del checking._REGISTRY["99.1"]


def verdict(fn, **kwargs) -> checking.Verdict:
    return run_check("99.1", fn, reference=_double, **kwargs)


def test_correct_function_passes_with_case_count(exercise):
    result = verdict(lambda x: x * 2)
    assert result.passed
    assert result.message == "99.1 passed (4 hidden cases)"


def test_stub_is_reported_as_not_implemented(exercise):
    def stub(x):
        raise NotImplementedError()

    assert verdict(stub).message == "99.1 is not implemented yet"


def test_shape_mismatch_names_both_shapes(exercise):
    result = verdict(lambda x: (2 * x).flatten())
    assert not result.passed
    assert result.message == "99.1 failed on random case 1: shape — expected [3, 4], got [12]"


def test_dtype_mismatch_names_both_dtypes(exercise):
    result = verdict(lambda x: (2 * x).double())
    assert result.message == "99.1 failed on random case 1: dtype — expected torch.float32, got torch.float64"


def test_value_mismatch_gives_largest_error_and_its_index(exercise):
    def wrong_at_one_place(x):
        out = 2 * x
        out[1, 2] += 5.0
        return out

    message = verdict(wrong_at_one_place).message
    assert message.startswith("99.1 failed on random case 1: values — largest error 5 at index [1, 2]")
    assert "tolerance atol=1e-05" in message


def test_values_verdict_never_prints_the_whole_expected_answer(exercise):
    message = verdict(lambda x: 3 * x).message
    assert "tensor(" not in message and message.count("\n") == 0


def test_invariant_failure_is_named(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.invariants = [lambda out, case: "rows must sum to 1"]
    assert verdict(lambda x: 2 * x).message == "99.1 failed on random case 1: invariant — rows must sum to 1"


def test_edge_case_failure_names_the_edge_case(exercise):
    def wrong_on_tiny_inputs(x):
        return 2 * x if x.numel() > 1 else x + 1

    assert verdict(wrong_on_tiny_inputs).message.startswith("99.1 failed on edge case 4 (a 1x1 input): values")


def test_exception_in_learner_code_gives_type_message_and_line(exercise):
    def buggy(x):
        y = x.reshape(5, 7)  # the bug
        return y

    message = verdict(buggy).message
    assert message.startswith("99.1 failed on random case 1: your code raised RuntimeError: shape '[5, 7]' is invalid")
    assert "`y = x.reshape(5, 7)  # the bug`" in message
    assert "Traceback" not in message and message.count("\n") == 0


def test_hanging_function_gets_a_timeout_verdict(exercise):
    def hangs(x):
        while True:
            time.sleep(0.01)

    start = time.perf_counter()
    message = verdict(hangs).message
    assert message == "99.1 timed out on random case 1: your function ran longer than 1 s (an endless loop?)"
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(("returned", "described"), [(None, "None (did you forget to return?)"), ([1.0], "a list")])
def test_wrong_return_type_gets_a_sentence(exercise, returned, described):
    message = verdict(lambda x: returned).message
    assert message == f"99.1 failed on random case 1: type — expected a torch.Tensor of shape [3, 4], got {described}"


def test_passing_something_that_is_not_a_function(exercise):
    message = verdict(torch.zeros(3)).message
    assert message == "99.1: check expects your function itself, e.g. check('99.1', my_function); got Tensor"


def test_unknown_exercise_id_lists_the_known_ones(exercise):
    message = run_check("42.7", _double).message
    assert message.startswith("there is no exercise '42.7'; known exercises:") and "99.1" in message


def test_unknown_tier_is_refused(exercise):
    assert "tier must be one of ('public', 'hidden')" in verdict(_double, tier="secret").message


def test_hidden_tier_uses_the_grading_seed_and_more_cases(exercise, monkeypatch):
    seen: list[torch.Tensor] = []

    def spy(x):
        seen.append(x)
        return 2 * x

    assert verdict(spy).n_cases == 4
    public_first = seen[0]
    monkeypatch.setenv("COURSE_GRADING_SEED", "12345")
    seen.clear()
    hidden = verdict(spy, tier="hidden")
    assert hidden.passed and hidden.n_cases == 10
    assert not torch.equal(seen[0], public_first)


def test_public_cases_are_the_same_every_run(exercise):
    runs = []
    for _ in range(2):
        seen = []
        verdict(lambda x: seen.append(x) or 2 * x)
        runs.append(seen)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_in_place_edits_by_the_learner_do_not_change_the_reference_inputs(exercise):
    def doubles_in_place(x):
        return x.mul_(2)

    assert verdict(doubles_in_place).passed


def test_check_prints_exactly_one_line(exercise, capsys, monkeypatch):
    monkeypatch.setattr(checking, "reference_function", lambda spec: _double)
    checking.check("99.1", lambda x: 2 * x)
    assert capsys.readouterr().out == "99.1 passed (4 hidden cases)\n"


def test_numbers_are_compared_with_tolerance():
    checking._compare_numbers(1.0, torch.tensor(1.0 + 1e-7), atol=1e-6, rtol=0)
    with pytest.raises(checking._Mismatch, match="got 1.1, expected 1"):
        checking._compare_numbers(1.0, 1.1, atol=1e-6, rtol=0)
    with pytest.raises(checking._Mismatch, match="expected a number"):
        checking._compare_numbers(1.0, "1.0", atol=1e-6, rtol=0)


def test_every_notebook_exercise_has_a_reference_function():
    for exercise_id, spec in checking.exercises().items():
        assert callable(checking.reference_function(spec)), exercise_id


def test_grading_run_sets_the_tier_and_collects_verdicts(exercise, capsys, monkeypatch, tmp_path):
    import json

    monkeypatch.setattr(checking, "reference_function", lambda spec: _double)
    monkeypatch.setenv("COURSE_CHECK_TIER", "hidden")
    monkeypatch.setenv("COURSE_CHECK_LOG", str(tmp_path / "verdicts.jsonl"))
    checking.check("99.1", lambda x: 2 * x)
    checking.check("99.1", lambda x: 3 * x)
    assert capsys.readouterr().out.splitlines()[0] == "99.1 passed (10 hidden cases)"
    records = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert [(r["exercise_id"], r["passed"], r["n_cases"]) for r in records] == [("99.1", True, 10), ("99.1", False, 10)]


def test_exercises_with_many_right_answers_compare_structure_then_invariants(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.compare_values, spec.invariants = False, [lambda out, case: "must be finite" if not out.isfinite().all() else None]
    assert verdict(lambda x: 5 * x).passed  # any values of the right shape and dtype
    assert verdict(lambda x: x.double()).message.endswith("dtype — expected torch.float32, got torch.float64")
    assert verdict(lambda x: x / 0).message.endswith("invariant — must be finite")
