"""Checkers for 00_orientation: per-token loss, attention by hand, reading the residual stream, ablating a head."""

from __future__ import annotations

import numpy as np
import torch

from utils.checking import Case, Exercise, register
from utils.exercises._inputs import checker_model, randn, random_tokens


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
        return "a cross-entropy loss is never negative, but yours has negative entries"
    return None


register(Exercise("00.1", "per_token_loss", _loss_cases, invariants=[_nonnegative], atol=1e-4))


def _pattern_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        batch, pos, heads, d_head = rng.integers(1, 4), rng.integers(2, 12), rng.integers(1, 5), int(rng.choice([4, 16, 32]))
        cases.append(Case("random", (randn(rng, batch, pos, heads, d_head), randn(rng, batch, pos, heads, d_head))))
    cases.append(Case("edge", (randn(rng, 1, 1, 2, 8), randn(rng, 1, 1, 2, 8)), "a single position"))
    model = checker_model()
    _, cache = model.run_with_cache(random_tokens(model, rng, 2, 10), names_filter=lambda name: name.endswith(("hook_q", "hook_k")))
    cases.append(Case("edge", (cache["q", 1], cache["k", 1]), "q and k from the course model"))
    return cases


def _rows_sum_to_one(pattern: torch.Tensor, case: Case) -> str | None:
    row_sums = pattern.sum(-1)
    worst = int((row_sums - 1).abs().argmax())
    if (row_sums - 1).abs().max() > 1e-5:
        return f"each query's attention must sum to 1; one row sums to {row_sums.flatten()[worst].item():.4g}"
    return None


def _future_is_zero(pattern: torch.Tensor, case: Case) -> str | None:
    future = torch.triu(torch.ones(pattern.shape[-2:], dtype=torch.bool), diagonal=1)
    if pattern[..., future].abs().sum() != 0:
        return "attention to later positions must be exactly 0 (the causal mask)"
    return None


register(Exercise("00.2", "attention_pattern", _pattern_cases, invariants=[_rows_sum_to_one, _future_is_zero]))


def _residual_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    model = checker_model()
    n_layers = model.cfg.n_layers

    def case(kind: str, layer: int, pos: int, label: str = "") -> Case:
        _, cache = model.run_with_cache(random_tokens(model, rng, 2, 8), names_filter=lambda name: "resid" in name)
        return Case(kind, (cache, layer, pos), label)

    cases = [case("random", int(rng.integers(0, n_layers)), int(rng.integers(0, 8))) for _ in range(n_random)]
    cases.append(case("edge", n_layers, 3, f"layer={n_layers}: the final residual stream"))
    cases.append(case("edge", 0, -1, "layer 0, position -1"))
    return cases


register(Exercise("00.3", "residual_at", _residual_cases))


def _ablation_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    model = checker_model()
    layers, heads = model.cfg.n_layers, model.cfg.n_heads
    cases = [Case("random", (model, random_tokens(model, rng, 2, 12), int(rng.integers(0, layers)), int(rng.integers(0, heads))))
             for _ in range(n_random)]
    cases.append(Case("edge", (model, random_tokens(model, rng, 1, 2), layers - 1, heads - 1), "two tokens, the last head"))
    return cases


register(Exercise("00.4", "head_ablation_effect", _ablation_cases, atol=1e-4, rtol=1e-3))
