"""Checkers for 00_orientation: per-token loss, attention by hand, reading the residual stream, ablating a head.

Diagnoses build each known mistake from the reference solution on altered inputs or outputs (a missing
1/sqrt(d_head) is the reference on q and k scaled by d_head ** 0.25), so these specs never spell out an
answer; in a student release, which has no reference, verdicts simply name no likely cause.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from utils.checking import Case, Exercise, reference, register
from utils.exercises._inputs import RANDOM_MODEL, checker_model, exact_query_ramp, randn, random_tokens


# --- 00.1 per_token_loss ----------------------------------------------------------------------------
def _loss_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        batch, pos, vocab = rng.integers(1, 4), rng.integers(3, 10), rng.integers(5, 40)
        cases.append(Case("random", (randn(rng, batch, pos, vocab, scale=3.0), torch.from_numpy(rng.integers(0, vocab, (batch, pos))))))
    cases.append(Case("edge", (randn(rng, 2, 2, 7), torch.from_numpy(rng.integers(0, 7, (2, 2)))), "two tokens: one prediction"))
    cases.append(Case("edge", (randn(rng, 1, 5, 11, scale=1000.0), torch.from_numpy(rng.integers(0, 11, (1, 5)))),
                      "very large logits: is your log-softmax numerically stable?"))
    return cases


def _nonnegative(loss: torch.Tensor, case: Case) -> str | None:
    if (loss < 0).any():
        return "a cross-entropy loss is never negative, but yours has negative entries (the loss is -log p)"
    return None


def _loss_predicting_the_current_token(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return reference("00.1")(logits.roll(-1, dims=1), tokens)


def _loss_shifted_the_other_way(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return reference("00.1")(logits.roll(-1, dims=1), tokens.roll(1, dims=1))


def _squeezed_where(dim: int):
    """The reference with a .squeeze() that also drops `dim` (0: the batch, 1: the positions) when it has size 1.

    Only for cases where that dimension has size 1 (elsewhere it raises, and the diagnosis is skipped), so that a
    .squeeze() on a batch of one sequence is named before "do not average over the batch", whose output is the same.
    """
    def mistake(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        loss = reference("00.1")(logits, tokens)
        if loss.shape[dim] != 1:
            raise ValueError("this dimension has more than one entry: no squeeze drops it")
        return loss.squeeze()
    return mistake


register(Exercise("00.1", _loss_cases, invariants=[_nonnegative], atol=1e-4, diagnoses=[
    (_squeezed_where(0), "the batch dimension (size 1 here) is gone: .squeeze() drops every dimension of size 1, "
                         "so squeeze only the last one, .squeeze(-1) (and keep one row per sequence, "
                         "without averaging over the batch)"),
    (_squeezed_where(1), "the position dimension (size 1 here: one prediction) is gone: .squeeze() drops every dimension of "
                         "size 1, so squeeze only the last one, .squeeze(-1) (and keep one loss per predicted token)"),
    (lambda logits, tokens: -reference("00.1")(logits, tokens), "the sign: the loss is -log p, not log p"),
    (_loss_predicting_the_current_token, "no shift: the logits at position i predict the token at i + 1, not the token at i"),
    (_loss_shifted_the_other_way, "the shift goes the wrong way: drop the last position's logits and the first token"),
    (lambda logits, tokens: reference("00.1")(logits, tokens) / math.log(2), "log base 2: use the natural log"),
    (lambda logits, tokens: reference("00.1")(logits, tokens).mean(-1), "one loss per predicted token: do not average over positions"),
    (lambda logits, tokens: reference("00.1")(logits, tokens).mean(0), "one row per sequence: do not average over the batch"),
]))


# --- 00.2 attention_pattern -------------------------------------------------------------------------
def _pattern_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        batch, pos, heads, d_head = rng.integers(1, 4), rng.integers(2, 12), rng.integers(1, 5), int(rng.choice([4, 8, 16, 32]))
        cases.append(Case("random", (randn(rng, batch, pos, heads, d_head), randn(rng, batch, pos, heads, d_head))))
    cases.append(Case("edge", (randn(rng, 1, 1, 2, 8), randn(rng, 1, 1, 2, 8)), "a single position"))
    cases.append(Case("edge", exact_query_ramp(+1.0), "scores up to 7e7: is your softmax stable?"))
    cases.append(Case("edge", exact_query_ramp(-1.0), "every score below -8e9: is your mask -inf rather than a finite number?"))
    for name, layer, label in (("course-lm", 1, "q and k from the course model"),
                               (RANDOM_MODEL, -1, "q and k from the last layer of a 3-layer model with 3 heads")):
        model = checker_model(name)
        layer = layer % model.cfg.n_layers
        _, cache = model.run_with_cache(random_tokens(model, rng, 2, 10), names_filter=lambda n: n.endswith(("hook_q", "hook_k")))
        cases.append(Case("edge", (cache["q", layer], cache["k", layer]), label))
    return cases


def _future_is_zero(pattern: torch.Tensor, case: Case) -> str | None:
    future = torch.triu(torch.ones(pattern.shape[-2:], dtype=torch.bool), diagonal=1)
    leaked = pattern[..., future].nan_to_num(nan=0.0)
    if (leaked != 0).any():
        return f"attention to later positions must be exactly 0 (the causal mask); yours puts up to {leaked.abs().max().item():.2g} there"
    return None


def _rows_sum_to_one(pattern: torch.Tensor, case: Case) -> str | None:
    """Rows of a causal pattern sum to 1; a specific hint for a NaN row, masking after the softmax, or the wrong axis."""
    row_sums = pattern.sum(-1)  # [..., query]
    if row_sums.isnan().any():
        query = int(row_sums.isnan().nonzero()[0, -1])
        only_first = bool(row_sums[..., 1:].isfinite().all()) if row_sums.shape[-1] > 1 else True
        hint = ("does your mask hide the diagonal? each query must see its own position" if only_first and query == 0
                else "an overflow? softmax subtracts each row's maximum before exp; use torch.softmax")
        return f"query {query}'s attention is nan (not a number): {hint}"
    worst = (row_sums - 1).abs()
    if worst.max() <= 1e-5:
        return None
    problem = f"each query's attention must sum to 1; one row sums to {row_sums.flatten()[int(worst.argmax())].item():.3g}"
    if torch.allclose(pattern.sum(-2), torch.ones_like(pattern.sum(-2)), atol=1e-5):
        return problem + " (your columns sum to 1: a softmax over the queries instead of the keys?)"
    if (row_sums <= 1 + 1e-5).all() and _future_is_zero(pattern, case) is None:
        return problem + " (masking after the softmax? mask the scores, then take the softmax)"
    return problem


def _pattern_scaled_by(power: float):
    """The reference on q and k multiplied by d_head ** power: the scores come out scaled by d_head ** (2 * power)."""
    def mistake(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        factor = q.shape[-1] ** power
        return reference("00.2")(q * factor, k * factor)
    return mistake


register(Exercise("00.2", _pattern_cases, invariants=[_future_is_zero, _rows_sum_to_one], diagnoses=[
    (_pattern_scaled_by(0.25), "the 1/sqrt(d_head) scale is missing"),
    (_pattern_scaled_by(-0.25), "divide the scores by sqrt(d_head), not by d_head"),
    (lambda q, k: reference("00.2")(k, q), "queries and keys are swapped: the pattern is [query, key]"),
]))


# --- 00.3 residual_at -------------------------------------------------------------------------------
def _residual_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    def case(name: str, kind: str, layer: int, pos: int, label: str = "") -> Case:
        model = checker_model(name)
        _, cache = model.run_with_cache(random_tokens(model, rng, 2, 8), names_filter=lambda n: "resid" in n)
        return Case(kind, (cache, layer, pos), label)

    n_layers = checker_model().cfg.n_layers
    cases = [case("course-lm", "random", int(rng.integers(0, n_layers)), int(rng.integers(-8, 8))) for _ in range(n_random)]
    return cases + [
        case("course-lm", "edge", n_layers, 3, f"layer={n_layers}: the final residual stream"),
        case("course-lm", "edge", n_layers - 1, 5, f"layer={n_layers - 1}: the input of the last block"),
        case("course-lm", "edge", 0, -1, "layer 0, position -1"),
        case(RANDOM_MODEL, "edge", 3, 2, "a 3-layer model, layer=3: its final residual stream"),
        case(RANDOM_MODEL, "edge", 1, -2, "a 3-layer model, layer 1"),
    ]


def _residual_one_layer_later(cache, layer: int, pos: int) -> torch.Tensor:
    return reference("00.3")(cache, layer + 1, pos)


register(Exercise("00.3", _residual_cases, diagnoses=[
    (_residual_one_layer_later, "off by one layer: block `layer` reads resid_pre of that layer, before the block runs"),
    (lambda cache, layer, pos: reference("00.3")(cache, layer, pos - 1), "off by one position"),
    (lambda cache, layer, pos: reference("00.3")(cache, layer, pos + 1), "off by one position"),
]))


# --- 00.4 head_ablation_effect ----------------------------------------------------------------------
def _ablation_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    def case(name: str, kind: str, batch: int, length: int, layer: int | None, head: int | None, label: str = "") -> Case:
        model = checker_model(name)
        layer = int(rng.integers(0, model.cfg.n_layers)) if layer is None else layer % model.cfg.n_layers
        head = int(rng.integers(0, model.cfg.n_heads)) if head is None else head % model.cfg.n_heads
        return Case(kind, (model, random_tokens(model, rng, batch, length), layer, head), label)

    cases = [case("course-lm", "random", 2, 12, None, None) for _ in range(n_random)]
    return cases + [case("course-lm", "edge", 1, 2, -1, -1, "two tokens, the last layer's last head"),
                    case(RANDOM_MODEL, "edge", 2, 10, None, None, "a 3-layer model with 3 heads"),
                    case(RANDOM_MODEL, "edge", 2, 10, -1, -1, "a 3-layer model with 3 heads: its last head")]


def _ablating_another_head(step: int):
    def mistake(model, tokens: torch.Tensor, layer: int, head: int) -> float:
        return reference("00.4")(model, tokens, layer, (head + step) % model.cfg.n_heads)
    return mistake


def _ablated_loss_itself(model, tokens: torch.Tensor, layer: int, head: int) -> float:
    with torch.no_grad():
        unablated = model(tokens, return_type="loss").item()
    return reference("00.4")(model, tokens, layer, head) + unablated


register(Exercise("00.4", _ablation_cases, atol=1e-4, rtol=1e-3, diagnoses=[
    (lambda model, tokens, layer, head: -reference("00.4")(model, tokens, layer, head),
     "the sign: the effect is the ablated loss minus the clean loss"),
    (_ablated_loss_itself, "return the increase in loss (ablated minus clean), not the ablated loss"),
    (_ablating_another_head(1), "the wrong head: check which axis of hook_z is the head ([batch, pos, head, d_head])"),
    (_ablating_another_head(-1), "the wrong head: check which axis of hook_z is the head ([batch, pos, head, d_head])"),
]))
