"""Every checker accepts its solution (in both tiers) and rejects each known-wrong implementation.

Beyond "rejected", selected wrong implementations must get the specific line their class of mistake
calls for: an edge case that exposes it, an invariant named before values, a likely cause.
"""

import importlib
import pkgutil

import numpy as np
import pytest
import torch

import tests.known_wrong
from utils.checking import exercises, reference_function, run_check

WRONG = {exercise_id: wrong
         for module in pkgutil.iter_modules(tests.known_wrong.__path__)
         for exercise_id, wrong in importlib.import_module(f"tests.known_wrong.{module.name}").WRONG.items()}
BY_NAME = {fn.__name__: (exercise_id, fn) for exercise_id, fns in WRONG.items() for fn in fns}


def test_every_exercise_has_at_least_six_known_wrong_implementations():
    assert sorted(WRONG) == sorted(exercises())
    assert all(len(wrong) >= 6 for wrong in WRONG.values()), {i: len(w) for i, w in WRONG.items() if len(w) < 6}


@pytest.mark.parametrize("exercise_id", sorted(exercises()))
@pytest.mark.parametrize("tier", ["public", "hidden"])
def test_solution_passes(exercise_id, tier, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_SEED", "31337")
    verdict = run_check(exercise_id, reference_function(exercises()[exercise_id]), tier=tier)
    assert verdict.passed, verdict.message
    assert verdict.message == f"{exercise_id} passed ({verdict.n_cases} {tier} cases)"


# A grading seed must never fail a right answer: statistical bars (a search's strength, a chi-square) and drawn
# inputs (a total that can come out negative) are checked here on seeds other than the one above. 06.4 and 02.5
# failed their own reference on some seeds before their cases were fixed (2026-12-03).
@pytest.mark.parametrize("exercise_id", sorted(exercises()))
@pytest.mark.parametrize("grading_seed", ["1", "7", "424242"])
def test_solution_passes_the_hidden_tier_on_other_grading_seeds(exercise_id, grading_seed, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_SEED", grading_seed)
    verdict = run_check(exercise_id, reference_function(exercises()[exercise_id]), tier="hidden")
    assert verdict.passed, verdict.message


# The line a class of mistake must get: (known-wrong function, what its verdict must contain).
SPECIFIC = [
    # edge cases: huge scores, a finite mask, masking after the softmax, and no mask get different lines
    ("pattern_softmax_without_max", "(scores up to 7e7: is your softmax stable?): invariant — query 0's attention is nan"),
    ("pattern_finite_mask", "(every score below -8e9: is your mask -inf rather than a finite number?): invariant — "
                            "attention to later positions must be exactly 0"),
    ("pattern_small_finite_mask", "(every score below -8e9: is your mask -inf rather than a finite number?)"),
    ("pattern_unmasked", "invariant — attention to later positions must be exactly 0 (the causal mask)"),
    ("pattern_masked_after_softmax", "(masking after the softmax? mask the scores, then take the softmax)"),
    ("pattern_softmax_over_queries", "(your columns sum to 1: a softmax over the queries instead of the keys?)"),
    ("pattern_mask_off_by_one", "does your mask hide the diagonal?"),
    ("residual_softmax_without_max", "(scores up to 7e7: is your softmax stable?)"),
    ("residual_finite_mask", "(every score below -8e9: is your mask -inf rather than a finite number?)"),
    ("residual_masked_after_softmax", "(masking after the softmax?"),
    ("loss_log_of_softmax", "(very large logits: is your log-softmax numerically stable?): values — yours has inf"),
    # scalar arguments varied, and the last layer and a second model shape in the public tier
    ("icl_late_runs_to_the_end", "likely cause: `late` stops at late.stop, not at the end of the sequence"),
    ("icl_early_from_the_start", "likely cause: `early` starts at early.start, not at 0"),
    ("diagonal_always_previous_token", "failed on random case"),
    ("sink_always_position_zero", "failed on random case"),
    ("residual_last_layer_never_drawn", "likely cause: off by one layer"),
    ("residual_hard_coded_six_layers", "(a 3-layer model, layer=3: its final residual stream): your code raised KeyError"),
    ("ablation_hard_coded_four_heads", "(a 3-layer model with 3 heads)"),
    ("ablation_hard_coded_two_layers", "(a 3-layer model with 3 heads: its last head): output 1 of 2: shape — expected [3, 3], got [2, 3]"),
    ("pattern_hard_coded_d_head", "values — largest error"),
    ("residual_hard_coded_d_head", "values — largest error"),
    # structure-only exercise: reproducibility, coverage, distribution, order
    ("repeated_ignores_the_generator", "(the same generator seed gives the same tokens): two generators with the same seed "
                                       "gave different tokens"),
    ("repeated_reseeds_the_generator", "(different seeds give different tokens): generators with different seeds gave the same tokens"),
    ("repeated_seeds_the_global_state", "(each call draws new tokens from the generator): two calls with one generator gave "
                                        "the same tokens"),
    ("repeated_never_draws_the_last_id", "(every id of a 7-id vocabulary appears in 2000 draws): id "),
    ("repeated_skewed_draw", "(10000 draws are uniform over the vocabulary): the ids are not drawn uniformly"),
    ("repeated_sorted_rows", "(rows in random order, not sorted): row 0 of r comes out sorted"),
    ("repeated_consecutive_window", "(each token of r is drawn independently of the one before it): r[i + 1] is the entry "
                                    "of `vocab` right after r[i]"),
    ("repeated_each_draw_twice", "(each token of r is drawn independently of the one before it): r[i + 1] equals r[i]"),
    ("repeated_first_50_ids_only", "(10000 draws cover a 400-id vocabulary uniformly): 350 of the 400 ids of `vocab` "
                                   "never appeared"),
    ("repeated_randint_mod_100", "(10000 draws cover a 400-id vocabulary uniformly): 300 of the 400 ids of `vocab` "
                                 "never appeared"),
    # inputs changed in place, models left changed
    ("loss_normalises_the_logits_in_place", "your function changed `logits` in place"),
    ("pattern_scales_q_in_place", "your function changed `q` in place"),
    ("residual_centred_in_place", "your function changed `cache` in place"),
    ("residual_normalises_x_in_place", "your function changed `x` in place"),
    ("diagonal_divided_in_place", "your function changed `pattern` in place"),
    ("value_weighted_in_place", "your function changed `pattern` in place"),
    ("repeated_shuffles_vocab_in_place", "your function changed `vocab` in place"),
    ("previous_drops_bos_in_place", "your function changed `pattern` in place"),
    ("composition_normalises_in_place", "your function changed `W_A` in place"),
    ("icl_centres_losses_in_place", "your function changed `losses` in place"),
    ("ablation_leaves_its_hook_on", "your function left a hook on `model`"),
    ("ablation_permanent_hook", "your function left a hook on `model`"),
    ("ablation_by_zeroing_weights", "your function changed the weights of `model` in place"),
    # values that are not numbers
    ("sink_lying_float", "type — expected a plain number (float), got a _AlwaysEqual"),
    ("composition_lying_float", "type — expected a plain number (float), got a _LyingFloat"),
    ("sink_nan", "yours is nan (not a number)"),
    ("icl_empty_slice", "values — yours is nan (not a number)"),
    ("value_on_the_meta_device", "device — expected a tensor on cpu, got one on meta"),
    ("copying_complex_result", "dtype — expected torch.float32, got torch.complex64"),
    # likely causes, and which output of several is wrong
    ("pattern_unscaled", "; likely cause: the 1/sqrt(d_head) scale is missing"),
    ("residual_unscaled", "; likely cause: the 1/sqrt(d_head) scale is missing"),
    ("residual_without_biases", "; likely cause: the query bias b_Q is missing"),
    ("residual_without_query_bias", "; likely cause: the query bias b_Q is missing"),
    ("loss_squeezes_every_dim", "; likely cause: the batch dimension (size 1 here) is gone: .squeeze() drops every dimension"),
    ("residual_scaled_by_d_model", "; likely cause: divide the scores by sqrt(d_head), not by sqrt(d_model)"),
    ("pattern_keys_and_queries_swapped", "; likely cause: queries and keys are swapped"),
    ("loss_predicts_current_token", "; likely cause: no shift"),
    ("loss_wrong_sign", "invariant — a cross-entropy loss is never negative"),
    ("loss_in_bits", "; likely cause: log base 2"),
    ("loss_averaged", "shape — expected"),
    ("residual_after_the_block", "; likely cause: off by one layer"),
    ("residual_position_off_by_one", "; likely cause: off by one position"),
    ("ablation_wrong_sign", "values — yours is"),
    ("ablation_next_head", "; likely cause: the wrong head"),
    ("ablation_loss_not_difference", "; likely cause: return the increase in loss (ablated minus clean), not the ablated loss"),
    ("diagonal_over_all_queries", "; likely cause: average over the queries that have such a key"),
    ("diagonal_keeps_batch", "; likely cause: average over the batch too"),
    ("sink_as_fraction", "; likely cause: return a percentage (0 to 100), not a fraction"),
    ("sink_includes_equality", "(alpha exactly equal to eps: not a sink (strictly greater)): values — yours is 100 too high"),
    ("value_norm_without_W_O", "; likely cause: W_O is missing"),
    ("induction_off_by_one", "; likely cause: off by one: the target is the token after the first occurrence"),
    ("induction_sum_not_mean", "; likely cause: a sum over the second-copy queries"),
    ("induction_keeps_batch", "; likely cause: average over the batch (dim 0), not over the heads (dim 1)"),
    ("previous_over_all_rows", "; likely cause: average over the pos - 1 queries"),
    ("composition_reversed_product", "; likely cause: the product order"),
    ("composition_squared_norms", "; likely cause: squared norms"),
    ("ablation_loss_over_everything", "output 2 of 2: values — yours is"),
    ("ablation_of_the_whole_layer", "output 1 of 2: values — largest error"),
    ("copying_real_parts_only", "; likely cause: the moduli |λ| include the imaginary parts"),
    ("icl_reversed", "; likely cause: the sign: late minus early"),
    ("adversary_first_within_eps", "return the one with the largest JSD, not the first"),
    ("icl_inclusive_stop", "; likely cause: a range's stop is exclusive"),
    ("probe_unscaled", "standardise the features before the probe"),
]




def test_every_specific_line_belongs_to_a_known_wrong_implementation():
    assert not [name for name, _ in SPECIFIC if name not in BY_NAME]


@pytest.mark.parametrize(("exercise_id", "wrong"), [(i, fn) for i, fns in sorted(WRONG.items()) for fn in fns],
                         ids=lambda x: getattr(x, "__name__", x))
def test_known_wrong_implementation_is_rejected(exercise_id, wrong):
    """Rejected in one line that never states an expected value, and, where listed, with the line its mistake calls for."""
    message = run_check(exercise_id, wrong).message
    assert message.startswith(f"{exercise_id} failed on "), message
    assert message.count("\n") == 0
    if " values — " in message:
        assert "expected" not in message.split(" values — ", 1)[1], message
    for name, expected in SPECIFIC:
        if name == wrong.__name__:
            assert expected in message, message


def test_an_error_only_the_checker_model_raises_says_what_to_do_instead():
    # Zero-ablating at hook_result is right on course-lm, but the checker's 3-layer model (TransformerLens-native
    # attention) cannot compute hook_result: the verdict must say so, not only quote the library's error.
    def head_ablation_effect(model, tokens, layer, head):
        model.set_use_attn_result(True)
        try:
            def zero(result, hook):
                result[:, :, head] = 0
                return result

            clean = model(tokens, return_type="loss")
            ablated = model.run_with_hooks(tokens, return_type="loss",
                                           fwd_hooks=[(f"blocks.{layer}.attn.hook_result", zero)])
        finally:
            model.set_use_attn_result(False)
        return (ablated - clean).item()

    verdict = run_check("00.4", head_ablation_effect)
    assert not verdict.passed
    assert "(a 3-layer model with 3 heads)" in verdict.message
    assert verdict.message.endswith("zero or patch the head's slice of hook_z, which every model has"), verdict.message


# Right answers the checkers once rejected (the review of 2026-12-03): each must pass in both tiers.
def _pattern_without_key_bias(x, W_Q, b_Q, W_K, b_K):  # q . b_K is one constant per query: the softmax cancels it
    return reference_function(exercises()["01.1"])(x, W_Q, b_Q, W_K, 0 * b_K)


def _direct_effects_centred(model, cache, io, s):  # LayerNorm's centring applied to each head's output
    direction = (model.W_U[:, io] - model.W_U[:, s]).T  # [batch, d_model]
    scale = cache["ln_final.hook_scale"][:, -1, 0]  # [batch]
    effects = []
    for layer in range(model.cfg.n_layers):
        written = torch.einsum("bhd,hdm->hbm", cache[f"blocks.{layer}.attn.hook_z"][:, -1], model.W_O[layer])
        effects.append(((written - written.mean(-1, keepdim=True)) * direction).sum(-1) / scale)
    return torch.stack(effects)  # [layer, head, batch]


def _noise_std_in_numpy(model, subjects):  # the sample std, as the text asks, through numpy
    ids = torch.cat([model.to_tokens(subject, prepend_bos=False)[0] for subject in subjects])
    return float(np.std(model.W_E[ids].detach().numpy(), ddof=1))


@pytest.mark.parametrize("exercise_id, right", [("01.1", _pattern_without_key_bias), ("05.7", _direct_effects_centred),
                                                ("05.1", _noise_std_in_numpy)])
@pytest.mark.parametrize("tier", ["public", "hidden"])
def test_a_right_alternative_passes(exercise_id, right, tier, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_SEED", "31337")
    verdict = run_check(exercise_id, right, tier=tier)
    assert verdict.passed, verdict.message


def test_a_projection_that_removes_everything_has_rank_zero():
    # W spanning all of R^d leaves P = I - B B^T = 0 up to rounding; a rank counted relative to P's largest singular
    # value (numpy's default) saw full rank in that rounding noise and rejected a right P (04.4).
    from scipy.linalg import orth

    from utils.exercises.nb04 import _projection_properties

    W = np.random.default_rng(0).standard_normal((10, 10))  # [directions, d]
    B = orth(W.T)
    X = np.random.default_rng(1).standard_normal((5, 10))
    assert _projection_properties(np.eye(10) - B @ B.T, W, X) is None
    assert _projection_properties(np.eye(10), W, X) is not None  # keeping everything is still wrong
