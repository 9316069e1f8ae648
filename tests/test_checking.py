"""Every verdict the checker framework can give, produced on small synthetic exercises."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from utils import checking
from utils.checking import Case, Exercise, ExerciseRequired, derive_seed, run_check


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def _cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", (torch.from_numpy(rng.standard_normal((3, 4))).float(),)) for _ in range(n_random)]
    return cases + [Case("edge", (torch.zeros(1, 1),), "a 1x1 input")]


def _positive_sum(out: torch.Tensor, case: Case) -> str | None:
    return "the output must not be exactly zero" if out.abs().sum() == 0 and case.args[0].abs().sum() > 0 else None


@pytest.fixture
def exercise():
    spec = checking.register(Exercise("99.1", _cases, function="double", n_random=3, invariants=[_positive_sum], timeout_s=1.0))
    yield spec
    del checking._REGISTRY["99.1"]


def _sum(x: torch.Tensor) -> float:
    return x.sum().item()


@pytest.fixture
def scalar_exercise():
    spec = checking.register(Exercise("99.2", _cases, function="total", n_random=3, timeout_s=1.0))
    yield spec
    del checking._REGISTRY["99.2"]


def _double_and_sum(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    return 2 * x, x.sum().item()


@pytest.fixture
def pair_exercise():
    spec = checking.register(Exercise("99.3", _cases, function="double_and_sum", n_random=3, timeout_s=1.0))
    yield spec
    del checking._REGISTRY["99.3"]


def verdict(fn, **kwargs) -> checking.Verdict:
    return run_check("99.1", fn, reference=_double, **kwargs)


# --- passing, and naming the tier -------------------------------------------------------------------
def test_correct_function_passes_with_case_count_and_tier(exercise):
    result = verdict(lambda x: x * 2)
    assert result.passed
    assert result.message == "99.1 passed (4 public cases)"


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
    assert hidden.message == "99.1 passed (10 hidden cases)"
    assert not torch.equal(seen[0], public_first)


def test_hidden_tier_without_a_grading_seed_refuses_loudly(exercise, monkeypatch):
    monkeypatch.delenv("COURSE_GRADING_SEED", raising=False)
    calls = []
    result = verdict(lambda x: calls.append(x) or 2 * x, tier="hidden")
    assert not result.passed and not calls  # nothing ran on a fixed seed
    assert result.message == ("99.1: NOT GRADED — the hidden tier needs COURSE_GRADING_SEED set to the secret grading "
                              "seed (an integer); it never falls back to a fixed seed")


def test_hidden_tier_refuses_a_grading_seed_that_is_not_an_integer(exercise, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_SEED", "sesame")
    assert verdict(_double, tier="hidden").message == "99.1: NOT GRADED — COURSE_GRADING_SEED must be an integer"


def test_hidden_tier_in_a_student_release_says_what_is_missing(exercise, monkeypatch):
    def no_reference(spec):
        raise ModuleNotFoundError("No module named 'utils.reference'", name="utils.reference")

    monkeypatch.setattr(checking, "reference_function", no_reference)
    monkeypatch.delenv("COURSE_GRADING_SEED", raising=False)
    assert run_check("99.1", _double, tier="hidden").message == (
        "99.1: the hidden tier needs the reference solutions (utils/reference/), which a student release leaves out")


def test_different_grading_seeds_draw_different_cases(exercise, monkeypatch):
    firsts = []
    for seed in ("1", "2"):
        monkeypatch.setenv("COURSE_GRADING_SEED", seed)
        seen = []
        verdict(lambda x: seen.append(x) or 2 * x, tier="hidden")
        firsts.append(seen[0])
    assert not torch.equal(*firsts)


def test_public_cases_are_the_same_every_run(exercise):
    runs = []
    for _ in range(2):
        seen = []
        verdict(lambda x: seen.append(x) or 2 * x)
        runs.append(seen)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


# --- seeds ------------------------------------------------------------------------------------------
def test_derive_seed_separates_ids_that_stripping_the_dot_would_merge():
    assert derive_seed(7, "00.12") != derive_seed(7, "01.2")
    assert derive_seed(7, "1.1") != derive_seed(7, "11")


def test_derive_seed_depends_on_every_part_and_fits_every_generator():
    seeds = {derive_seed(base, *parts) for base in (0, 1, 20261122) for parts in [("a",), ("b",), ("a", "b"), ("ab",)]}
    assert len(seeds) == 12
    assert all(0 <= seed < 2 ** 63 for seed in seeds)
    for seed in seeds:  # usable as is by numpy and torch
        np.random.default_rng(seed)
        torch.Generator().manual_seed(seed)


def test_derive_seed_is_stable_across_processes():
    """Not Python's hash(), which changes from process to process: another process derives the same seed."""
    script = "from utils.checking import derive_seed; print(derive_seed(20261122, '00.2'))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert int(other) == derive_seed(20261122, "00.2")


# --- how a failure is reported ----------------------------------------------------------------------
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


def test_value_mismatch_gives_the_largest_error_its_index_and_direction(exercise):
    def wrong_at_one_place(x):
        out = 2 * x
        out[1, 2] += 5.0
        return out

    assert verdict(wrong_at_one_place).message == ("99.1 failed on random case 1: values — largest error 5 at index [1, 2], "
                                                   "yours too large (tolerance atol=1e-05, rtol=0.0001)")


def test_value_mismatch_says_when_yours_is_too_small(exercise):
    def low_at_one_place(x):
        out = 2 * x
        out[0, 3] -= 0.25
        return out

    assert verdict(low_at_one_place).message.endswith("largest error 0.25 at index [0, 3], yours too small "
                                                      "(tolerance atol=1e-05, rtol=0.0001)")


def test_values_verdict_never_prints_the_expected_answer(exercise):
    seen = []
    message = verdict(lambda x: seen.append(x) or 3 * x).message
    expected = 2 * seen[0]
    assert "expected" not in message and "tensor(" not in message and message.count("\n") == 0
    assert not any(f"{value:.3g}" in message for value in expected.flatten().tolist() if abs(value) > 0.01)


def test_scalar_verdict_says_how_far_off_and_which_way_never_the_target(scalar_exercise):
    seen = []
    high = run_check("99.2", lambda x: seen.append(x) or x.sum().item() + 0.42, reference=_sum)
    assert high.message == "99.2 failed on random case 1: values — yours is 0.42 too high (tolerance atol=1e-05, rtol=0.0001)"
    target = seen[0].sum().item()
    assert f"{target:.3g}" not in high.message and f"{target:.4g}" not in high.message
    low = run_check("99.2", lambda x: x.sum().item() - 3.0, reference=_sum)
    assert low.message == "99.2 failed on random case 1: values — yours is 3 too low (tolerance atol=1e-05, rtol=0.0001)"


def test_scalar_exercises_accept_plain_numbers_numpy_scalars_and_0d_tensors(scalar_exercise):
    for fn in (_sum, lambda x: x.sum(), lambda x: np.float64(x.sum().item()), lambda x: np.float32(x.sum().item())):
        assert run_check("99.2", fn, reference=_sum).passed


def test_multi_output_exercises_say_which_output_is_wrong(pair_exercise):
    wrong_second = run_check("99.3", lambda x: (2 * x, x.sum().item() + 1.5), reference=_double_and_sum)
    assert wrong_second.message == ("99.3 failed on random case 1: output 2 of 2: values — yours is 1.5 too high "
                                    "(tolerance atol=1e-05, rtol=0.0001)")
    wrong_first = run_check("99.3", lambda x: (2 * x.T, x.sum().item()), reference=_double_and_sum)
    assert wrong_first.message == "99.3 failed on random case 1: output 1 of 2: shape — expected [3, 4], got [4, 3]"
    not_a_pair = run_check("99.3", lambda x: [2 * x, x.sum().item()], reference=_double_and_sum)
    assert not_a_pair.message == "99.3 failed on random case 1: type — expected a tuple of 2 items, got a list"


def test_invariant_failure_is_named(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.invariants = [lambda out, case: "rows must sum to 1"]
    assert verdict(lambda x: 2 * x).message == "99.1 failed on random case 1: invariant — rows must sum to 1"


def test_invariants_are_checked_before_values(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.invariants = [lambda out, case: "must not be negative" if (out < 0).any() else None]
    assert verdict(lambda x: -2 * x).message == "99.1 failed on random case 1: invariant — must not be negative"


def test_an_invariant_that_cannot_read_the_output_still_gives_one_line(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.invariants = [lambda out, case: out.no_such_attribute]
    message = verdict(lambda x: 2 * x).message
    assert message.startswith("99.1 failed on random case 1: invariant — your output could not be checked (")
    assert message.count("\n") == 0


def test_a_known_mistake_names_its_likely_cause(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.diagnoses = [(lambda x: x.T, "transposed"), (lambda x: 3 * x, "tripled instead of doubled")]
    message = verdict(lambda x: 3 * x).message
    assert message.startswith("99.1 failed on random case 1: values — largest error ")
    assert message.endswith("(tolerance atol=1e-05, rtol=0.0001); likely cause: tripled instead of doubled")
    assert "likely cause" not in verdict(lambda x: 4 * x).message


def test_a_diagnosis_that_fails_is_skipped(exercise):
    def broken(x):
        raise ModuleNotFoundError("no reference in a student release", name="utils.reference.nb99")

    spec = checking._REGISTRY["99.1"]
    spec.diagnoses = [(broken, "never shown"), (lambda x: 3 * x, "tripled")]
    assert verdict(lambda x: 3 * x).message.endswith("; likely cause: tripled")


def test_diagnoses_also_explain_shape_mismatches(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.diagnoses = [(lambda x: (2 * x).sum(0), "summed over rows")]
    assert verdict(lambda x: (2 * x).sum(0)).message == ("99.1 failed on random case 1: shape — expected [3, 4], got [4]; "
                                                          "likely cause: summed over rows")


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
    assert message.endswith(f"(your line {buggy.__code__.co_firstlineno + 1}: `y = x.reshape(5, 7)  # the bug`)")
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


def test_exercises_with_many_right_answers_compare_structure_then_invariants(exercise):
    spec = checking._REGISTRY["99.1"]
    spec.compare_values, spec.invariants = False, [lambda out, case: "must be finite" if not out.isfinite().all() else None]
    assert verdict(lambda x: 5 * x).passed  # any values of the right shape and dtype
    assert verdict(lambda x: x.double()).message.endswith("dtype — expected torch.float32, got torch.float64")
    assert verdict(lambda x: x / 0).message.endswith("invariant — must be finite")


def test_property_cases_run_their_probe_on_the_learner_function():
    def probe(call, case):
        return None if torch.equal(call(*case.args), call(*case.args)) else "two calls on the same input differ"

    def cases(rng, n_random):
        return [Case("property", (torch.ones(3),), "deterministic", probe)]

    checking.register(Exercise("99.4", cases, function="noisy", compare_values=False, timeout_s=1.0))
    try:
        assert run_check("99.4", lambda x: x * 2, reference=_double).message == "99.4 passed (1 public cases)"
        noisy = run_check("99.4", lambda x: x + torch.rand(3), reference=_double)
        assert noisy.message == "99.4 failed on property case 1 (deterministic): two calls on the same input differ"
    finally:
        del checking._REGISTRY["99.4"]


def test_the_reference_draws_from_its_own_seed_and_a_release_freezes_what_a_check_compares(exercise, monkeypatch):
    def drawing_reference(x):  # a reference that draws: its output must not depend on what the learner drew
        return 2 * x + torch.rand(())

    monkeypatch.setattr(checking, "reference_function", lambda spec: drawing_reference)
    compared, judge = [], checking._run_case

    def recording(spec, fn, expected_for, case, index):
        def record(i):
            compared.append(expected_for(i))
            return compared[-1]
        return judge(spec, fn, record, case, index)

    monkeypatch.setattr(checking, "_run_case", recording)
    run_check("99.1", lambda x: 2 * x)  # fails on case 1 (the reference adds a draw): one expected output compared
    run_check("99.1", lambda x: 2 * x + 0 * torch.rand(1000).sum())  # the same, after drawing 1000 numbers
    frozen = checking.reference_outputs(exercise)
    assert len(compared) == 2 and torch.equal(compared[0], compared[1]) and torch.equal(compared[0], frozen[0])
    draws = [output - 2 * case.args[0] for output, case in zip(frozen, checking.cases_for(exercise, "public"))]
    assert draws[0].flatten()[0] != draws[1].flatten()[0]  # each case has its own draw


# --- check(): the verdict line, then the function later cells use -----------------------------------
def test_check_prints_exactly_one_line_and_returns_a_passing_function(exercise, capsys, monkeypatch):
    monkeypatch.setattr(checking, "reference_function", lambda spec: _double)

    def mine(x):
        return 2 * x

    assert checking.check("99.1", mine) is mine
    assert capsys.readouterr().out == "99.1 passed (4 public cases)\n"


def test_failing_check_says_so_and_returns_the_reference(exercise, capsys, monkeypatch):
    monkeypatch.setattr(checking, "reference_function", lambda spec: _double)
    assert checking.check("99.1", lambda x: 3 * x) is _double
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("99.1 failed on random case 1: values")
    assert second == "99.1: the cells below use the course's reference solution until yours passes"


def test_stub_in_the_self_study_copy_gets_the_reference(exercise, capsys, monkeypatch):
    monkeypatch.setattr(checking, "reference_function", lambda spec: _double)

    def stub(x):
        raise NotImplementedError

    assert checking.check("99.1", stub) is _double
    assert capsys.readouterr().out.splitlines() == [
        "99.1 is not implemented yet", "99.1: the cells below use the course's reference solution until yours passes"]


def test_failing_check_in_a_student_release_stops_with_one_line(exercise, capsys, monkeypatch):
    def no_reference(spec):
        raise ModuleNotFoundError("No module named 'utils.reference'", name="utils.reference")

    monkeypatch.setattr(checking, "reference_function", no_reference)
    monkeypatch.setattr(checking, "frozen_expected", lambda spec: [_double(*case.args) for case in checking.cases_for(spec, "public")])
    with pytest.raises(ExerciseRequired) as raised:
        checking.check("99.1", lambda x: 3 * x)
    assert str(raised.value) == "solve exercise 99.1 (double) above first: the cells below need it"
    assert raised.value._render_traceback_() == ["solve exercise 99.1 (double) above first: the cells below need it"]
    assert capsys.readouterr().out.startswith("99.1 failed on random case 1: values")


def test_passing_check_in_a_student_release_returns_the_function(exercise, monkeypatch):
    def no_reference(spec):
        raise ModuleNotFoundError("No module named 'utils.reference'", name="utils.reference")

    monkeypatch.setattr(checking, "reference_function", no_reference)
    monkeypatch.setattr(checking, "frozen_expected", lambda spec: [_double(*case.args) for case in checking.cases_for(spec, "public")])

    def mine(x):
        return x + x

    assert checking.check("99.1", mine) is mine


def test_grading_run_sets_the_tier_and_collects_verdicts(exercise, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(checking, "reference_function", lambda spec: _double)
    monkeypatch.setenv("COURSE_CHECK_TIER", "hidden")
    monkeypatch.setenv("COURSE_GRADING_SEED", "777")
    monkeypatch.setenv("COURSE_CHECK_LOG", str(tmp_path / "verdicts.jsonl"))
    checking.check("99.1", lambda x: 2 * x)
    checking.check("99.1", lambda x: 3 * x)
    assert capsys.readouterr().out.splitlines()[0] == "99.1 passed (10 hidden cases)"
    records = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert [(r["exercise_id"], r["passed"], r["n_cases"]) for r in records] == [("99.1", True, 10), ("99.1", False, 10)]
    assert set(records[0]) == {"exercise_id", "passed", "n_cases", "message"}


def test_every_notebook_exercise_has_a_reference_function():
    for exercise_id, spec in checking.exercises().items():
        assert callable(checking.reference_function(spec)), exercise_id
