"""Checkers for 03_induction_heads: repeated tokens, head scores, composition, ablation, copying, ICL."""

from __future__ import annotations

import numpy as np
import torch

from utils.checking import Case, Exercise, register
from utils.exercises._inputs import causal_patterns, checker_model, randn

INDUCTION_MODEL = "attn-only-2l"


def _repeated_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    def case(kind: str, vocab_size: int, batch: int, length: int, label: str = "") -> Case:
        bos = int(rng.integers(0, 5))
        vocab = torch.from_numpy(rng.choice(np.arange(5, 500), size=vocab_size, replace=False))
        return Case(kind, (bos, vocab, batch, length, torch.Generator().manual_seed(int(rng.integers(1 << 30)))), label)

    cases = [case("random", int(rng.integers(20, 200)), int(rng.integers(2, 6)), int(rng.integers(5, 30))) for _ in range(n_random)]
    return cases + [case("edge", 50, 1, 1, "one row, length 1"), case("edge", 1, 3, 4, "a vocabulary of one id")]


def _bos_then_two_equal_halves(tokens: torch.Tensor, case: Case) -> str | None:
    bos, _, _, length, _ = case.args
    if (tokens[:, 0] != bos).any():
        return "every row must start with the BOS id"
    if not torch.equal(tokens[:, 1:1 + length], tokens[:, 1 + length:]):
        return "the second half of each row must repeat the first half"
    return None


def _drawn_from_vocab(tokens: torch.Tensor, case: Case) -> str | None:
    _, vocab, batch, length, _ = case.args
    if not torch.isin(tokens[:, 1:], vocab).all():
        return "r may only contain ids from `vocab`"
    if len(vocab) >= 20 and batch * length >= 20 and tokens[:, 1:1 + length].unique().numel() < 5:
        return "r should be random: almost every token is the same"
    if len(vocab) >= 20 and batch > 1 and length >= 5 and (tokens == tokens[:1]).all():
        return "every row is identical: draw each row separately"
    return None


register(Exercise("03.1", "repeated_tokens", _repeated_cases, compare_values=False,
                  invariants=[_bos_then_two_equal_halves, _drawn_from_vocab]))


def _perfect_induction(half: int) -> torch.Tensor:
    pos = 1 + 2 * half
    pattern = torch.zeros(1, 1, pos, pos)
    pattern[0, 0, :half + 1, 0] = 1.0  # the first copy rests on BOS
    for i in range(half):
        pattern[0, 0, half + 1 + i, i + 2] = 1.0
    return pattern


def _induction_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        half = int(rng.integers(2, 10))
        cases.append(Case("random", (causal_patterns(rng, int(rng.integers(1, 4)), int(rng.integers(1, 5)), 1 + 2 * half), half)))
    cases.append(Case("edge", (_perfect_induction(6), 6), "a perfect induction head: score 1"))
    cases.append(Case("edge", (causal_patterns(rng, 2, 3, 3), 1), "half=1"))
    return cases


register(Exercise("03.2", "induction_score", _induction_cases))


def _previous_token_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", (causal_patterns(rng, int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 15))),))
             for _ in range(n_random)]
    perfect = torch.zeros(1, 2, 7, 7)
    perfect[:, :, 0, 0] = 1.0
    perfect[:, :, torch.arange(1, 7), torch.arange(0, 6)] = 1.0
    cases.append(Case("edge", (perfect,), "a perfect previous-token head: score 1"))
    cases.append(Case("edge", (causal_patterns(rng, 3, 2, 2),), "two positions"))
    return cases


register(Exercise("03.3", "previous_token_score", _previous_token_cases))


def _composition_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        d = int(rng.integers(3, 40))
        cases.append(Case("random", (randn(rng, d, d), randn(rng, d, d, scale=float(rng.uniform(0.1, 10))))))
    u, v, w = randn(rng, 16, 1), randn(rng, 16, 1), randn(rng, 16, 1)
    cases.append(Case("edge", (torch.eye(9), torch.eye(9)), "identities: 1/sqrt(d)"))
    cases.append(Case("edge", (u @ v.T, v @ w.T), "aligned rank-1 matrices: 1"))
    return cases


def _in_unit_interval(score: float, case: Case) -> str | None:
    return None if 0.0 <= score <= 1.0 + 1e-6 else f"a composition score lies in [0, 1]; got {score:.3g}"


register(Exercise("03.4", "composition_score", _composition_cases, invariants=[_in_unit_interval], atol=1e-5, rtol=1e-4))


def _ablation_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    model = checker_model(INDUCTION_MODEL)
    layers, heads = model.cfg.n_layers, model.cfg.n_heads

    def case(kind: str, batch: int, half: int, layer: int, head: int, label: str = "") -> Case:
        r = torch.from_numpy(rng.integers(3, model.cfg.d_vocab, (batch, half)))
        tokens = torch.cat([torch.full((batch, 1), model.tokenizer.bos_token_id), r, r], dim=1).long()
        return Case(kind, (model, tokens, layer, head), label)

    cases = [case("random", int(rng.integers(1, 5)), int(rng.integers(4, 20)), int(rng.integers(0, layers)),
                  int(rng.integers(0, heads))) for _ in range(n_random)]
    return cases + [case("edge", 2, 3, layers - 1, heads - 1, "the last head, a short sequence")]


register(Exercise("03.5", "ablated_scores", _ablation_cases, atol=1e-4, rtol=1e-3))


def _eigenvalue_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    def spectrum(*shape: int) -> torch.Tensor:
        return torch.complex(randn(rng, *shape), randn(rng, *shape))

    cases = [Case("random", (spectrum(int(rng.integers(1, 5)), int(rng.integers(2, 30))),)) for _ in range(n_random)]
    positive = torch.from_numpy(rng.uniform(0.1, 3, (2, 8))).to(torch.complex64)
    cases.append(Case("edge", (positive,), "all eigenvalues positive: score 1"))
    cases.append(Case("edge", (-positive,), "all eigenvalues negative: score -1"))
    cases.append(Case("edge", (spectrum(6),), "a single spectrum, no batch dimension"))
    return cases


register(Exercise("03.6", "copying_score", _eigenvalue_cases, atol=1e-5))


def _icl_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        pos = int(rng.integers(12, 60))
        early_start, late_start = int(rng.integers(0, 4)), int(rng.integers(pos // 2, pos - 3))
        losses = torch.from_numpy(rng.exponential(2.0, (int(rng.integers(1, 6)), pos))).float()
        cases.append(Case("random", (losses, range(early_start, early_start + 3), range(late_start, pos))))
    flat = torch.full((4, 20), 2.5)
    cases.append(Case("edge", (flat, range(0, 5), range(10, 20)), "constant loss: score 0"))
    return cases


register(Exercise("03.7", "icl_score", _icl_cases, atol=1e-5))
