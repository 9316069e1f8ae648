"""Checkers for 01_attention_patterns: the pattern from the residual stream, diagonal scores, sinks, value weighting."""

from __future__ import annotations

import numpy as np
import torch

from utils.checking import Case, Exercise, register
from utils.exercises._inputs import causal_patterns, checker_model, randn, random_tokens
from utils.exercises.nb00 import _future_is_zero, _rows_sum_to_one


def _residual_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        batch, pos, heads, d_model, d_head = (int(rng.integers(1, 3)), int(rng.integers(2, 10)), int(rng.integers(1, 4)),
                                              int(rng.integers(4, 24)), int(rng.choice([2, 4, 8])))
        cases.append(Case("random", (randn(rng, batch, pos, d_model), randn(rng, heads, d_model, d_head, scale=0.5),
                                     randn(rng, heads, d_head), randn(rng, heads, d_model, d_head, scale=0.5),
                                     randn(rng, heads, d_head))))
    model = checker_model()
    layer = int(rng.integers(0, model.cfg.n_layers))
    _, cache = model.run_with_cache(random_tokens(model, rng, 2, 9), names_filter=lambda name: name.endswith("ln1.hook_out"))
    cases.append(Case("edge", (cache[f"blocks.{layer}.ln1.hook_out"], model.W_Q[layer], model.b_Q[layer], model.W_K[layer],
                               model.b_K[layer]), "a layer of the course model"))
    return cases


register(Exercise("01.1", "attention_from_residual", _residual_cases, invariants=[_rows_sum_to_one, _future_is_zero],
                  atol=1e-5, rtol=1e-4))


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
    return cases


register(Exercise("01.2", "diagonal_score", _diagonal_cases))


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
    return cases


def _percentage(rate: float, case: Case) -> str | None:
    return None if 0.0 <= rate <= 100.0 else f"a percentage lies between 0 and 100; got {rate:.3g}"


register(Exercise("01.3", "sink_rate", _sink_cases, invariants=[_percentage], atol=1e-4))


def _value_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        batch, heads, pos, d_head, d_model = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(2, 10)),
                                              int(rng.choice([2, 4, 8])), int(rng.integers(4, 20)))
        cases.append(Case("random", (causal_patterns(rng, batch, heads, pos), randn(rng, batch, pos, heads, d_head),
                                     randn(rng, heads, d_head, d_model))))
    model = checker_model()
    layer = int(rng.integers(0, model.cfg.n_layers))
    _, cache = model.run_with_cache(random_tokens(model, rng, 2, 8), names_filter=lambda name: name.endswith(("hook_pattern", "hook_v")))
    cases.append(Case("edge", (cache["pattern", layer], cache["v", layer], model.W_O[layer]), "a layer of the course model"))
    return cases


register(Exercise("01.4", "value_weighted_attention", _value_cases, atol=1e-5, rtol=1e-4))
