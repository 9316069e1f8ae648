"""Checkers for 03_induction_heads: repeated tokens, head scores, composition, ablation, copying, ICL."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from utils.checking import Case, Exercise, reference, register
from utils.exercises._inputs import RANDOM_MODEL, bos_id, causal_patterns, checker_model, randn

INDUCTION_MODEL = "attn-only-2l"


# --- 03.1 repeated_tokens: many right answers, so properties instead of values ----------------------
def _repeated_args(rng: np.random.Generator, vocab_size: int, batch: int, length: int) -> tuple:
    bos = int(rng.integers(0, 5))
    vocab = torch.from_numpy(rng.choice(np.arange(5, 500), size=vocab_size, replace=False))
    return bos, vocab, batch, length, torch.Generator().manual_seed(int(rng.integers(1 << 30)))


def _drawn(call: Callable[..., Any], bos: int, vocab: torch.Tensor, batch: int, length: int,
           generator: torch.Generator) -> torch.Tensor | str:
    """r, the first copy ([batch, length]) of the learner's rows, or what is wrong with their output."""
    out = call(bos, vocab, batch, length, generator)
    if type(out) is not torch.Tensor or tuple(out.shape) != (batch, 1 + 2 * length):
        return f"for batch={batch}, length={length} your function returned something other than a [{batch}, {1 + 2 * length}] tensor"
    return out[:, 1:1 + length]


def _same_seed_same_rows(call: Callable[..., Any], case: Case) -> str | None:
    bos, vocab, batch, length, generator = case.args
    seed = generator.initial_seed()
    first = _drawn(call, bos, vocab, batch, length, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed + 1)  # disturb the global random state between the two calls
    torch.rand(17)
    second = _drawn(call, bos, vocab, batch, length, torch.Generator().manual_seed(seed))
    for drawn in (first, second):
        if isinstance(drawn, str):
            return drawn
    if not torch.equal(first, second):
        return "two generators with the same seed gave different tokens: draw with `generator=generator`, not the global random state"
    return None


def _other_seed_other_rows(call: Callable[..., Any], case: Case) -> str | None:
    bos, vocab, batch, length, generator = case.args
    seed = generator.initial_seed()
    first = _drawn(call, bos, vocab, batch, length, torch.Generator().manual_seed(seed))
    second = _drawn(call, bos, vocab, batch, length, torch.Generator().manual_seed(seed + 1))
    for drawn in (first, second):
        if isinstance(drawn, str):
            return drawn
    if torch.equal(first, second):
        return "generators with different seeds gave the same tokens: use the generator you are given, without reseeding it"
    return None


def _generator_advances(call: Callable[..., Any], case: Case) -> str | None:
    bos, vocab, batch, length, generator = case.args
    shared = torch.Generator().manual_seed(generator.initial_seed())
    first = _drawn(call, bos, vocab, batch, length, shared)
    second = _drawn(call, bos, vocab, batch, length, shared)
    for drawn in (first, second):
        if isinstance(drawn, str):
            return drawn
    if torch.equal(first, second):
        return ("two calls with one generator gave the same tokens: draw from `generator` itself, so that it advances "
                "(do not reseed it or reuse its seed)")
    return None


def _every_id_drawn(call: Callable[..., Any], case: Case) -> str | None:
    bos, vocab, batch, length, generator = case.args
    drawn = _drawn(call, *case.args)
    if isinstance(drawn, str):
        return drawn
    missing = [int(i) for i in vocab if not (drawn == i).any()]
    if missing:
        return (f"id {missing[0]} of `vocab` never appeared in {batch * length} draws from {len(vocab)} ids: "
                "can your draw reach every index? (randint's upper bound is exclusive)")
    return None


def _uniform(call: Callable[..., Any], case: Case) -> str | None:
    from scipy.stats import chisquare

    bos, vocab, batch, length, generator = case.args
    drawn = _drawn(call, *case.args)
    if isinstance(drawn, str):
        return drawn
    counts = torch.stack([(drawn == i).sum() for i in vocab]).numpy()
    p_value = chisquare(counts).pvalue
    if counts.sum() != drawn.numel() or p_value < 1e-6:
        return (f"the ids are not drawn uniformly from `vocab` (chi-square p = {p_value:.1g} over {batch * length} draws "
                f"from {len(vocab)} ids): each id should be equally likely")
    return None


def _uniform_over_many_ids(call: Callable[..., Any], case: Case) -> str | None:
    """Every id of a large vocabulary is reachable and about equally likely (no fixed bound on the index)."""
    from scipy.stats import chisquare

    bos, vocab, batch, length, generator = case.args
    drawn = _drawn(call, *case.args)
    if isinstance(drawn, str):
        return drawn
    counts = torch.stack([(drawn == i).sum() for i in vocab]).numpy()
    never = int((counts == 0).sum())
    if never:  # about 25 draws per id: a given id is missed with probability e^-25
        return (f"{never} of the {len(vocab)} ids of `vocab` never appeared in {batch * length} draws: every id must be "
                "possible however large `vocab` is (draw indices from 0 to len(vocab) - 1, with no fixed bound)")
    p_value = chisquare(counts).pvalue
    if counts.sum() != drawn.numel() or p_value < 1e-9:
        return (f"the ids are not drawn uniformly from a {len(vocab)}-id `vocab` (chi-square p = {p_value:.1g} over "
                f"{batch * length} draws): each id should be equally likely, whatever its position in `vocab`")
    return None


def _neighbour_dependence(drawn: torch.Tensor, vocab: torch.Tensor) -> str | None:
    """What ties r[i + 1] to r[i], if anything: the step between their indices in `vocab` should be unpredictable.

    Each step d = (index of r[i + 1] - index of r[i]) mod V has an expected count n * sum_j p_j p_(j + d) given how
    often each id is drawn (n / V for uniform draws; computing it from the drawn frequencies keeps a merely skewed
    draw out of this test). Independent draws keep every count within 6 standard deviations of that; one step far
    above it means the next token follows from the one before (0: a token repeated at once; 1: the next entry of
    `vocab`). Draws without replacement within a row only lower the count of step 0, so they pass.
    """
    if not torch.isin(drawn, vocab).all():
        return "r may only contain ids from `vocab` (vocab[i], not the index i)"
    size = len(vocab)
    index = torch.full((int(vocab.max()) + 1,), -1, dtype=torch.long)
    index[vocab] = torch.arange(size)
    positions = index[drawn.long()]  # [batch, length]
    steps = (positions[:, 1:] - positions[:, :-1]) % size  # [batch, length - 1]
    n = steps.numel()
    if n == 0 or size < 2:
        return None
    counts = torch.bincount(steps.flatten(), minlength=size).double()
    p = torch.bincount(positions.flatten(), minlength=size).double() / positions.numel()
    share = torch.stack([(p * p.roll(-d)).sum() for d in range(size)])  # P(step = d) for independent draws
    excess = (counts - n * share) / (n * share * (1 - share)).clamp_min(1e-12).sqrt()
    step = int(excess.argmax())
    if excess[step] <= 6:
        return None
    seen = f"{counts[step].item() / n:.0%} of neighbouring pairs"
    if step == 0:
        return (f"r[i + 1] equals r[i] in {seen} (independent draws from {size} ids rarely repeat at once): "
                "draw every position of r independently")
    if step == 1:
        return (f"r[i + 1] is the entry of `vocab` right after r[i] in {seen}: draw every position of r independently, "
                "not a run of consecutive entries of `vocab`")
    return f"r[i + 1] sits a fixed number of entries of `vocab` after r[i] in {seen}: draw every position of r independently"


def _neighbours_independent(call: Callable[..., Any], case: Case) -> str | None:
    drawn = _drawn(call, *case.args)
    return drawn if isinstance(drawn, str) else _neighbour_dependence(drawn, case.args[1])


def _rows_in_random_order(call: Callable[..., Any], case: Case) -> str | None:
    drawn = _drawn(call, *case.args)
    if isinstance(drawn, str):
        return drawn
    ascending = (drawn[:, 1:] >= drawn[:, :-1]).all(-1) | (drawn[:, 1:] <= drawn[:, :-1]).all(-1)  # [batch]
    if ascending.any():
        return f"row {int(ascending.nonzero()[0])} of r comes out sorted: r must be in random order"
    return None


def _repeated_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", _repeated_args(rng, int(rng.integers(20, 200)), int(rng.integers(2, 6)), int(rng.integers(5, 30))))
             for _ in range(n_random)]
    cases += [Case("edge", _repeated_args(rng, 50, 1, 1), "one row, length 1"),
              Case("edge", _repeated_args(rng, 1, 3, 4), "a vocabulary of one id")]
    properties = [(_same_seed_same_rows, (60, 4, 20), "the same generator seed gives the same tokens"),
                  (_other_seed_other_rows, (60, 4, 20), "different seeds give different tokens"),
                  (_generator_advances, (60, 4, 20), "each call draws new tokens from the generator"),
                  (_every_id_drawn, (7, 40, 50), "every id of a 7-id vocabulary appears in 2000 draws"),
                  (_uniform, (10, 100, 100), "10000 draws are uniform over the vocabulary"),
                  (_rows_in_random_order, (200, 8, 30), "rows in random order, not sorted"),
                  (_neighbours_independent, (25, 40, 51), "each token of r is drawn independently of the one before it"),
                  (_uniform_over_many_ids, (400, 50, 200), "10000 draws cover a 400-id vocabulary uniformly")]
    return cases + [Case("property", _repeated_args(rng, *sizes), label, probe) for probe, sizes, label in properties]


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
        return "r may only contain ids from `vocab` (vocab[i], not the index i)"
    if len(vocab) >= 20 and batch * length >= 20 and tokens[:, 1:1 + length].unique().numel() < 5:
        return "r should be random: almost every token is the same"
    if len(vocab) >= 20 and batch > 1 and length >= 5 and (tokens == tokens[:1]).all():
        return "every row is identical: draw each row separately"
    return None


register(Exercise("03.1", _repeated_cases, compare_values=False,
                  invariants=[_bos_then_two_equal_halves, _drawn_from_vocab]))


# --- 03.2 induction_score and 03.3 previous_token_score ---------------------------------------------
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
    cases.append(Case("edge", (causal_patterns(rng, 3, 2, 25), 12), "half=12, three samples"))
    return cases


def _per_sample(exercise_id: str) -> Callable:
    def mistake(pattern: torch.Tensor, *args: Any) -> torch.Tensor:
        return torch.stack([reference(exercise_id)(pattern[b:b + 1], *args) for b in range(pattern.shape[0])])
    return mistake


def _score_diagnoses(exercise_id: str) -> list[tuple[Callable, str]]:
    """Mistakes that both head scores share: averaging over the wrong axes, reading the pattern as [key, query]."""
    return [
        (_per_sample(exercise_id), "average over the batch too: the score is one number per head"),
        (lambda pattern, *args: reference(exercise_id)(pattern.transpose(0, 1), *args),
         "average over the batch (dim 0), not over the heads (dim 1)"),
        (lambda pattern, *args: reference(exercise_id)(pattern.transpose(-1, -2), *args),
         "the pattern is [query, key]: rows are queries, and the target key is below the diagonal"),
    ]


register(Exercise("03.2", _induction_cases, diagnoses=[
    (lambda pattern, half: reference("03.2")(pattern.roll(1, dims=-1), half),
     "off by one: the target is the token after the first occurrence (key = query - half + 1)"),
    (lambda pattern, half: reference("03.2")(pattern.roll(-1, dims=-1), half),
     "off by one: the target is the token after the first occurrence (key = query - half + 1)"),
    (lambda pattern, half: reference("03.2")(pattern, half) * half, "a sum over the second-copy queries: take their mean"),
    *_score_diagnoses("03.2"),
]))


def _previous_token_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", (causal_patterns(rng, int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 15))),))
             for _ in range(n_random)]
    perfect = torch.zeros(1, 2, 7, 7)
    perfect[:, :, 0, 0] = 1.0
    perfect[:, :, torch.arange(1, 7), torch.arange(0, 6)] = 1.0
    cases.append(Case("edge", (perfect,), "a perfect previous-token head: score 1"))
    cases.append(Case("edge", (causal_patterns(rng, 3, 2, 2),), "two positions"))
    return cases


def _previous_over_every_row(pattern: torch.Tensor) -> torch.Tensor:
    pos = pattern.shape[-1]
    return reference("03.3")(pattern) * (pos - 1) / pos


register(Exercise("03.3", _previous_token_cases, diagnoses=[
    (_previous_over_every_row, "average over the pos - 1 queries that have a previous position, not over all pos"),
    *_score_diagnoses("03.3"),
]))


# --- 03.4 composition_score -------------------------------------------------------------------------
def _composition_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        d = int(rng.integers(3, 40))
        cases.append(Case("random", (randn(rng, d, d), randn(rng, d, d, scale=float(rng.uniform(0.1, 10))))))
    u, v, w = randn(rng, 16, 1), randn(rng, 16, 1), randn(rng, 16, 1)
    cases.append(Case("edge", (torch.eye(9), torch.eye(9)), "identities: 1/sqrt(d)"))
    cases.append(Case("edge", (u @ v.T, v @ w.T), "aligned rank-1 matrices: 1"))
    cases.append(Case("edge", (randn(rng, 12, 12, scale=100.0), randn(rng, 12, 12, scale=0.01)), "very different scales"))
    return cases


def _in_unit_interval(score: float, case: Case) -> str | None:
    if score != score:
        return "a composition score lies in [0, 1]; yours is nan (not a number)"
    return None if 0.0 <= score <= 1.0 + 1e-6 else f"a composition score lies in [0, 1]; got {score:.3g}"


register(Exercise("03.4", _composition_cases, invariants=[_in_unit_interval], atol=1e-5, rtol=1e-4, diagnoses=[
    (lambda W_A, W_B: reference("03.4")(W_B, W_A), "the product order: W_A @ W_B (what W_A writes, W_B reads)"),
    (lambda W_A, W_B: reference("03.4")(W_A.T, W_B), "W_A is transposed"),
    (lambda W_A, W_B: reference("03.4")(W_A, W_B.T), "W_B is transposed"),
    (lambda W_A, W_B: reference("03.4")(W_A, W_B) ** 2, "squared norms: use the Frobenius norms themselves"),
]))


# --- 03.5 ablated_scores ----------------------------------------------------------------------------
def _ablation_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    def case(name: str, kind: str, batch: int, half: int, layer: int | None, head: int | None, label: str = "") -> Case:
        model = checker_model(name)
        layer = int(rng.integers(0, model.cfg.n_layers)) if layer is None else layer % model.cfg.n_layers
        head = int(rng.integers(0, model.cfg.n_heads)) if head is None else head % model.cfg.n_heads
        r = torch.from_numpy(rng.integers(3, model.cfg.d_vocab, (batch, half)))
        tokens = torch.cat([torch.full((batch, 1), bos_id(model)), r, r], dim=1).long()
        return Case(kind, (model, tokens, layer, head), label)

    cases = [case(INDUCTION_MODEL, "random", int(rng.integers(1, 5)), int(rng.integers(4, 20)), None, None) for _ in range(n_random)]
    return cases + [case(INDUCTION_MODEL, "edge", 2, 3, -1, -1, "the last layer's last head, a short sequence"),
                    case(RANDOM_MODEL, "edge", 2, 6, -1, -1, "a 3-layer model with 3 heads: its last head")]


def _ablating_another_head(step: int) -> Callable:
    def mistake(model, tokens: torch.Tensor, layer: int, head: int) -> tuple[torch.Tensor, float]:
        return reference("03.5")(model, tokens, layer, (head + step) % model.cfg.n_heads)
    return mistake


register(Exercise("03.5", _ablation_cases, atol=1e-4, rtol=1e-3, diagnoses=[
    (_ablating_another_head(1), "the wrong head: check which axis of hook_z is the head ([batch, pos, head, d_head])"),
    (_ablating_another_head(-1), "the wrong head: check which axis of hook_z is the head ([batch, pos, head, d_head])"),
]))


# --- 03.6 copying_score -----------------------------------------------------------------------------
def _eigenvalue_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    def spectrum(*shape: int) -> torch.Tensor:
        return torch.complex(randn(rng, *shape), randn(rng, *shape))

    cases = [Case("random", (spectrum(int(rng.integers(1, 5)), int(rng.integers(2, 30))),)) for _ in range(n_random)]
    positive = torch.from_numpy(rng.uniform(0.1, 3, (2, 8))).to(torch.complex64)
    cases.append(Case("edge", (positive,), "all eigenvalues positive: score 1"))
    cases.append(Case("edge", (-positive,), "all eigenvalues negative: score -1"))
    cases.append(Case("edge", (spectrum(6),), "a single spectrum, no batch dimension"))
    cases.append(Case("edge", (spectrum(2, 3, 7),), "two batch dimensions [2, 3, n]"))
    return cases


register(Exercise("03.6", _eigenvalue_cases, atol=1e-5, diagnoses=[
    (lambda eigenvalues: reference("03.6")(eigenvalues.real.to(eigenvalues.dtype)),
     "the moduli |λ| include the imaginary parts: use abs() of the complex eigenvalues"),
    (lambda eigenvalues: reference("03.6")(eigenvalues.movedim(0, -1)), "sum over the last dimension (the eigenvalues), not the first"),
]))


# --- 03.7 icl_score ---------------------------------------------------------------------------------
def _icl_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        pos = int(rng.integers(14, 60))
        early_start, late_start = int(rng.integers(0, 4)), int(rng.integers(pos // 2, pos - 6))
        late_stop = pos if rng.random() < 0.5 else int(rng.integers(late_start + 2, pos))
        losses = torch.from_numpy(rng.exponential(2.0, (int(rng.integers(1, 6)), pos))).float()
        cases.append(Case("random", (losses, range(early_start, early_start + int(rng.integers(2, 5))), range(late_start, late_stop))))
    flat = torch.full((4, 20), 2.5)
    cases.append(Case("edge", (flat, range(0, 5), range(10, 20)), "constant loss: score 0"))
    ramp = torch.from_numpy(rng.exponential(2.0, (3, 30))).float()
    cases.append(Case("edge", (ramp, range(4, 9), range(15, 25)), "early starts at 4, late stops 5 before the end"))
    return cases


register(Exercise("03.7", _icl_cases, atol=1e-5, diagnoses=[
    (lambda losses, early, late: -reference("03.7")(losses, early, late), "the sign: late minus early"),
    (lambda losses, early, late: reference("03.7")(losses, early, range(late.start, losses.shape[-1])),
     "`late` stops at late.stop, not at the end of the sequence"),
    (lambda losses, early, late: reference("03.7")(losses, range(0, early.stop), late), "`early` starts at early.start, not at 0"),
    (lambda losses, early, late: reference("03.7")(losses, range(early.start, early.stop + 1), range(late.start, late.stop + 1)),
     "a range's stop is exclusive: positions start, ..., stop - 1"),
]))
