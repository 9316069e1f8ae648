"""A check leaves no trace: not in the learner's random generators or settings, not in the checker models.

The last test runs every exercise's checks twice in one process, with a function in between that
poisons everything it can reach, and requires identical verdicts.
"""

import random

import numpy as np
import pytest
import torch
from torch.nn.modules import module as torch_module

from tests.known_wrong import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07
from utils import checking
from utils.checking import Case, Exercise, exercises, reference_function, run_check
from utils.exercises._inputs import RANDOM_MODEL, checker_model

MODELS = ("course-lm", "attn-only-2l", RANDOM_MODEL)


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def _cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    return [Case("random", (torch.from_numpy(rng.standard_normal((3, 4))).float(),)) for _ in range(n_random)]


@pytest.fixture
def exercise():
    checking.register(Exercise("99.7", _cases, function="double", n_random=3, timeout_s=2.0))
    yield
    del checking._REGISTRY["99.7"]


# --- the learner's random generators and settings ---------------------------------------------------
@pytest.mark.parametrize("learner", [lambda x: 2 * x, lambda x: 2 * x + 0 * torch.rand(()),
                                     lambda x: (torch.manual_seed(0), np.random.seed(0), random.seed(0), 2 * x)[-1]],
                         ids=["pure", "draws from the global generator", "reseeds every generator"])
def test_a_check_neither_reseeds_nor_consumes_the_learners_generators(exercise, learner):
    def draws():
        return torch.rand(5), np.random.rand(5), random.random()

    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    without = draws()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    run_check("99.7", learner, reference=_double)
    after = draws()
    assert torch.equal(without[0], after[0]) and np.array_equal(without[1], after[1]) and without[2] == after[2]


def test_a_check_on_the_real_exercises_leaves_the_generators_alone():
    torch.manual_seed(5)
    without = torch.rand(4)
    torch.manual_seed(5)
    for exercise_id in ("00.2", "03.1"):  # one builds model inputs, one draws with generators
        run_check(exercise_id, reference_function(exercises()[exercise_id]))
    assert torch.equal(torch.rand(4), without)


def test_settings_a_function_changes_are_put_back(exercise):
    def changes_settings(x):
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        return 2 * x

    assert run_check("99.7", changes_settings, reference=_double).passed
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()


def test_a_function_that_leaves_a_global_module_hook_fails_and_the_hook_is_removed(exercise):
    def leaves_a_global_hook(x):
        torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: output)
        return 2 * x

    assert run_check("99.7", leaves_a_global_hook, reference=_double).message == (
        "99.7 failed on random case 1: your function left a global module hook registered; remove it before returning")
    assert not torch_module._global_forward_hooks


def test_the_learners_own_global_hooks_are_off_during_a_check_and_back_after(exercise):
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: calls.append(module))
    try:
        assert run_check("00.2", reference_function(exercises()["00.2"])).passed  # runs the checker models
        assert not calls
        torch.nn.Linear(2, 2)(torch.ones(2))
        assert calls
    finally:
        handle.remove()


# --- pristine checker models ------------------------------------------------------------------------
def _parameters(name: str) -> list[torch.Tensor]:
    return [p.detach().clone() for p in checker_model(name).parameters()]


def test_hooks_and_weights_left_on_a_model_fail_the_case_and_are_undone():
    reference = reference_function(exercises()["00.4"])
    before = _parameters("course-lm")
    internal = {name: len(m._state_dict_hooks) for name, m in checker_model("course-lm").named_modules()}

    def permanent_hook(model, tokens, layer, head):
        model.add_hook("blocks.0.hook_resid_pre", lambda x, hook: x * 0, is_permanent=True)
        return reference(model, tokens, layer, head)

    def raw_torch_hook(model, tokens, layer, head):
        model.blocks[0].register_forward_pre_hook(lambda module, inputs: None)
        return reference(model, tokens, layer, head)

    def nan_weights(model, tokens, layer, head):
        value = reference(model, tokens, layer, head)
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return value

    assert "left a hook on `model`" in run_check("00.4", permanent_hook).message
    assert "left a hook on `model`" in run_check("00.4", raw_torch_hook).message
    assert "changed the weights of `model` in place" in run_check("00.4", nan_weights).message
    assert run_check("00.4", reference).passed
    assert all(torch.equal(a, b) for a, b in zip(before, _parameters("course-lm")))
    model = checker_model("course-lm")
    assert not any(getattr(m, "fwd_hooks", None) for m in model.modules())
    assert {name: len(m._state_dict_hooks) for name, m in model.named_modules()} == internal  # TransformerLens's own survive


@pytest.mark.parametrize(("change", "line"), [
    (lambda model: model.to("meta"), "changed the weights of `model` in place"),
    (lambda model: model.double(), "changed the weights of `model` in place"),
    (lambda model: setattr(model.blocks[0].attn, "forward", lambda *args, **kwargs: None), "changed the modules of `model`"),
    (lambda model: setattr(model.blocks[0], "attn", torch.nn.Identity()), "changed the modules of `model`"),
], ids=["to meta", "to float64", "a forward replaced", "a module replaced"])
def test_a_model_moved_converted_or_rewired_is_caught_and_restored(change, line):
    reference = reference_function(exercises()["00.4"])

    def changes_the_model(model, tokens, layer, head):
        value = reference(model, tokens, layer, head)
        change(model)
        return value

    assert line in run_check("00.4", changes_the_model).message
    assert run_check("00.4", reference).passed


def test_a_change_through_a_caches_model_is_caught():
    reference = reference_function(exercises()["00.3"])

    def edits_the_model_behind_the_cache(cache, layer, pos):
        cache.model.cfg.n_layers = 1
        return reference(cache, layer, pos)

    assert "changed the config of `cache.model` in place" in run_check("00.3", edits_the_model_behind_the_cache).message
    assert checker_model("course-lm").cfg.n_layers == 6
    assert run_check("00.3", reference).passed


# --- twice, with poison in between ------------------------------------------------------------------
def _poison(*args):
    """A learner's function at its worst: hooks of every kind, NaN weights and config, edited inputs, global settings."""
    for name in MODELS:
        model = checker_model(name)
        model.add_hook("blocks.0.hook_resid_pre", lambda x, hook: x * 0, is_permanent=True)
        model.add_hook("blocks.0.attn.hook_pattern", lambda x, hook: x.flip(-1))
        model.blocks[0].hook_resid_pre.register_forward_hook(lambda module, inputs, output: output * 3)
        model.blocks[-1].register_forward_pre_hook(lambda module, inputs: None)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float("nan"))
        model.train()
        model.cfg.n_layers += 1
    for arg in args:
        if isinstance(arg, torch.Tensor) and arg.is_floating_point():
            arg.fill_(float("nan"))
        if hasattr(arg, "cache_dict"):
            for tensor in arg.cache_dict.values():
                tensor.fill_(float("nan"))
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    return None


def _verdicts(wrong: dict[str, list]) -> dict[str, list[str]]:
    return {exercise_id: [run_check(exercise_id, fn).message for fn in (reference_function(spec), wrong[exercise_id][0])]
            for exercise_id, spec in exercises().items()}


def test_every_exercise_gives_identical_verdicts_before_and_after_poison():
    wrong = {**nb00.WRONG, **nb01.WRONG, **nb02.WRONG, **nb03.WRONG, **nb04.WRONG, **nb05.WRONG, **nb06.WRONG, **nb07.WRONG}
    first = _verdicts(wrong)
    assert all(messages[0].split(" (")[0].endswith("passed") for messages in first.values())
    for exercise_id in exercises():  # poison from inside a check, through each exercise's own arguments
        assert not run_check(exercise_id, _poison).passed
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: None)
    try:
        _poison()  # and from outside any check, as notebook code holding the checker models could
        assert _verdicts(wrong) == first
    finally:
        handle.remove()
        torch.set_default_dtype(torch.float32)
        checking.restore_pristine()
