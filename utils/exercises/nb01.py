"""Checkers for 01_attention_patterns: the pattern from the residual stream, diagonal scores, sinks, value weighting."""

from __future__ import annotations

import numpy as np
import torch

from utils.checking import Case, Exercise, reference, register
from utils.exercises._inputs import RANDOM_MODEL, causal_patterns, checker_model, exact_query_ramp, randn, random_tokens
from utils.exercises.nb00 import _future_is_zero, _rows_sum_to_one


# --- 01.1 attention_from_residual -------------------------------------------------------------------
def _exact_residual_case(sign: float, label: str) -> Case:
    """x [1, pos, 4] with identity W_Q and sign * identity W_K: the scores of `exact_query_ramp`, huge and exact."""
    q, _ = exact_query_ramp(sign)  # [1, pos, heads, 4]
    heads = q.shape[2]
    identity = torch.eye(4).expand(heads, 4, 4).clone()  # [head, d_model, d_head]
    return Case("edge", (q[:, :, 0, :].clone(), identity, torch.zeros(heads, 4), sign * identity, torch.zeros(heads, 4)), label)


def _residual_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        batch, pos, heads, d_model, d_head = (int(rng.integers(1, 3)), int(rng.integers(2, 10)), int(rng.integers(1, 4)),
                                              int(rng.integers(4, 24)), int(rng.choice([2, 4, 8])))
        cases.append(Case("random", (randn(rng, batch, pos, d_model), randn(rng, heads, d_model, d_head, scale=0.5),
                                     randn(rng, heads, d_head), randn(rng, heads, d_model, d_head, scale=0.5),
                                     randn(rng, heads, d_head))))
    cases.append(_exact_residual_case(+1.0, "scores up to 7e7: is your softmax stable?"))
    cases.append(_exact_residual_case(-1.0, "every score below -8e9: is your mask -inf rather than a finite number?"))
    n_layers = checker_model().cfg.n_layers
    for name, layer, label in (("course-lm", int(rng.integers(0, n_layers)), "a layer of the course model"),
                               ("course-lm", n_layers - 1, "the course model's last layer"),
                               (RANDOM_MODEL, 2, "the last layer of a 3-layer model with 3 heads")):
        model = checker_model(name)
        _, cache = model.run_with_cache(random_tokens(model, rng, 2, 9), names_filter=lambda n: n.endswith("ln1.hook_out"))
        cases.append(Case("edge", (cache[f"blocks.{layer}.ln1.hook_out"], model.W_Q[layer], model.b_Q[layer],
                                   model.W_K[layer], model.b_K[layer]), label))
    return cases


def _residual_scaled_by(power_of_d_head: float, power_of_d_model: float = 0.0):
    """The reference with q and k (weights and biases) multiplied by d_head ** p * d_model ** r."""
    def mistake(x: torch.Tensor, W_Q: torch.Tensor, b_Q: torch.Tensor, W_K: torch.Tensor, b_K: torch.Tensor) -> torch.Tensor:
        factor = W_Q.shape[-1] ** power_of_d_head * x.shape[-1] ** power_of_d_model
        return reference("01.1")(x, W_Q * factor, b_Q * factor, W_K * factor, b_K * factor)
    return mistake


register(Exercise("01.1", _residual_cases, invariants=[_future_is_zero, _rows_sum_to_one],
                  atol=1e-5, rtol=1e-4, diagnoses=[
    # Without b_K, every score of a query moves by the same q . b_K, which the softmax cancels: the pattern is the
    # reference's, so leaving out b_K alone is right, and leaving out both biases looks exactly like leaving out b_Q.
    (lambda x, W_Q, b_Q, W_K, b_K: reference("01.1")(x, W_Q, 0 * b_Q, W_K, b_K),
     "the query bias b_Q is missing: q = x W_Q + b_Q (b_K alone may be left out: the softmax cancels it)"),
    (_residual_scaled_by(0.25), "the 1/sqrt(d_head) scale is missing"),
    (_residual_scaled_by(0.25, -0.25), "divide the scores by sqrt(d_head), not by sqrt(d_model)"),
    (lambda x, W_Q, b_Q, W_K, b_K: reference("01.1")(x, W_K, b_K, W_Q, b_Q), "queries and keys are swapped: the pattern is [query, key]"),
]))


# --- 01.2 diagonal_score ----------------------------------------------------------------------------
def _diagonal_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        pos = int(rng.integers(3, 14))
        cases.append(Case("random", (causal_patterns(rng, int(rng.integers(1, 4)), int(rng.integers(1, 5)), pos),
                                     -int(rng.integers(0, pos - 1)))))
    previous = torch.zeros(2, 3, 6, 6)
    previous[..., 0, 0] = 1.0
    previous[..., torch.arange(1, 6), torch.arange(0, 5)] = 1.0
    cases.append(Case("edge", (previous, -1), "a perfect previous-token head: score 1"))
    cases.append(Case("edge", (torch.eye(5).expand(1, 2, 5, 5).clone(), 0), "a perfect self head: score 1"))
    cases.append(Case("edge", (causal_patterns(rng, 3, 2, 7), -6), "offset -6 on 7 positions: one query per head and sample"))
    cases.append(Case("edge", (causal_patterns(rng, 2, 3, 8), 0), "offset 0 on random patterns: every query counts, "
                      "query 0 (whose weight on itself is 1) too"))
    return cases


def _diagonal_per_sample(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    return torch.stack([reference("01.2")(pattern[b:b + 1], offset) for b in range(pattern.shape[0])])


def _diagonal_over_every_query(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    pos = pattern.shape[-1]
    return reference("01.2")(pattern, offset) * (pos - abs(offset)) / pos


register(Exercise("01.2", _diagonal_cases, diagnoses=[
    (lambda pattern, offset: reference("01.2")(pattern, -offset), "the offset's sign: key = query + offset, on or below the diagonal"),
    (_diagonal_over_every_query, "average over the queries that have such a key (pos - |offset| of them), not over all pos"),
    (_diagonal_per_sample, "average over the batch too: the score is one number per head"),
    (lambda pattern, offset: reference("01.2")(pattern.transpose(0, 1), offset), "average over the batch (dim 0), not over the heads"),
    (lambda pattern, offset: reference("01.2")(pattern.transpose(-1, -2), offset), "the pattern is [query, key]: rows are queries"),
]))


# --- 01.3 sink_rate ---------------------------------------------------------------------------------
def _sink_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for index in range(n_random):
        pos, batch = int(rng.integers(4, 16)), int(rng.integers(2, 5))
        patterns = torch.stack([causal_patterns(rng, batch, 3, pos) for _ in range(int(rng.integers(1, 4)))])
        k = 0 if index == 0 else int(rng.integers(1, pos // 2))
        eps = patterns[..., k:, k].mean(-1).median().item() + 1e-4  # about half the heads are sinks: a sharp test
        cases.append(Case("random", (patterns, k, eps)))
    on_first = torch.zeros(2, 2, 3, 5, 5)
    on_first[..., 0] = 1.0
    cases.append(Case("edge", (on_first, 0, 0.3), "every head rests on position 0: 100%"))
    halves = torch.zeros(1, 1, 2, 6, 6)
    halves[..., 0, 0] = 1.0
    halves[..., 1:, :2] = 0.5  # alpha_1 is exactly 0.5
    cases.append(Case("edge", (halves, 1, 0.5), "alpha exactly equal to eps: not a sink (strictly greater)"))
    last = torch.stack([causal_patterns(rng, 4, 3, 6) for _ in range(2)])
    cases.append(Case("edge", (last, 5, last[..., 5, 5].median().item()), "k = T - 1: only the last query sees key k"))
    return cases


def _percentage(rate: float, case: Case) -> str | None:
    if rate != rate:
        return "a percentage lies between 0 and 100; yours is nan (not a number)"
    return None if 0.0 <= rate <= 100.0 else f"a percentage lies between 0 and 100; got {rate:.3g}"


register(Exercise("01.3", _sink_cases, invariants=[_percentage], atol=1e-4, diagnoses=[
    (lambda patterns, k, eps: reference("01.3")(patterns, k, eps) / 100.0, "return a percentage (0 to 100), not a fraction"),
    (lambda patterns, k, eps: reference("01.3")(patterns, k, eps - 1e-6), "a sink needs alpha > eps, strictly"),
]))


# --- 01.4 value_weighted_attention ------------------------------------------------------------------
def _value_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        batch, heads, pos, d_head, d_model = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(2, 10)),
                                              int(rng.choice([2, 4, 8])), int(rng.integers(4, 20)))
        cases.append(Case("random", (causal_patterns(rng, batch, heads, pos), randn(rng, batch, pos, heads, d_head),
                                     randn(rng, heads, d_head, d_model))))
    n_layers = checker_model().cfg.n_layers
    for name, layer, label in (("course-lm", int(rng.integers(0, n_layers)), "a layer of the course model"),
                               (RANDOM_MODEL, 2, "the last layer of a 3-layer model with 3 heads")):
        model = checker_model(name)
        _, cache = model.run_with_cache(random_tokens(model, rng, 2, 8), names_filter=lambda n: n.endswith(("hook_pattern", "hook_v")))
        cases.append(Case("edge", (cache["pattern", layer], cache["v", layer], model.W_O[layer]), label))
    return cases


def _values_without_W_O(pattern: torch.Tensor, v: torch.Tensor, W_O: torch.Tensor) -> torch.Tensor:
    heads, d_head = W_O.shape[0], W_O.shape[1]
    return reference("01.4")(pattern, v, torch.eye(d_head).expand(heads, d_head, d_head))


register(Exercise("01.4", _value_cases, atol=1e-5, rtol=1e-4, diagnoses=[
    (_values_without_W_O, "W_O is missing: weight by the norm of what the head writes, v_k W_O, not of v_k"),
]))
