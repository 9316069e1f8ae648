"""Checkers for 06_relative_attention: relative attention, the augmented Ω matrices and their per-singular-vector
terms, the minimal signal set, the upstream parts of the residual stream, and editing one head's q or k."""

from __future__ import annotations

import numpy as np
import torch

from utils import ioi
from utils.checking import Case, Exercise, reference, register
from utils.exercises._inputs import RANDOM_MODEL, checker_model, random_tokens

IOI_MODEL = "ioi-lm"


def _normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape) * scale)  # float64


def _ioi_tokens(model, rng: np.random.Generator) -> torch.Tensor:
    split = list(ioi.SPLITS)[int(rng.integers(len(ioi.SPLITS)))]
    prompt = ioi.prompts(1, split, seed=int(rng.integers(10**6)))[0]
    return model.to_tokens(prompt.text)[0]  # [pos]


# --- 06.1 relative_attention --------------------------------------------------------------------------
def _scores_case(rng: np.random.Generator, n_pos: int, d: int, s: int, label: str = "", kind: str = "random") -> Case:
    return Case(kind, (_normal(rng, n_pos, n_pos, scale=float(rng.uniform(1, 20))), d, s), label)


def _shift_invariant(call, case: Case) -> str | None:
    scores, d, s = case.args
    shifted = scores.clone()
    shifted[d] += 7.25  # softmax, and c, ignore a constant added to one query's row
    got, base = float(call(shifted, d, s)), float(call(scores.clone(), d, s))
    return None if abs(got - base) < 1e-9 else (
        f"adding 7.25 to every score of query {d} changed c from {base:.4f} to {got:.4f}: c must not move "
        "(it compares key s with the mean of the other keys)")


def _future_ignored(call, case: Case) -> str | None:
    scores, d, s = case.args
    noisy = scores.clone()
    noisy[d, d + 1 :] = 1e6
    got, base = float(call(noisy, d, s)), float(call(scores.clone(), d, s))
    return None if abs(got - base) < 1e-9 else (
        f"changing the scores of keys after {d} changed c: query {d} cannot see them (only keys 0 ... d count)")


def _relative_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        n_pos = int(rng.integers(4, 20))
        d = int(rng.integers(1, n_pos - 1))
        cases.append(_scores_case(rng, n_pos, d, int(rng.integers(0, d + 1))))
    cases += [_scores_case(rng, 6, 1, 0, "d = 1: one other key", "edge"),
              _scores_case(rng, 9, 5, 5, "s = d: the query's own position", "edge"),
              _scores_case(rng, 9, 8, 3, "the last query of the matrix", "edge"),
              Case("property", (_normal(rng, 8, 8), 4, 2), "a constant added to the row", _shift_invariant),
              Case("property", (_normal(rng, 10, 10), 3, 1), "huge scores for keys after d", _future_ignored)]
    return cases


register(Exercise("06.1", _relative_cases, atol=1e-9, rtol=1e-9, diagnoses=[
    (lambda scores, d, s: (scores[d, s] - scores[d, : d + 1].mean()).item(),
     "the mean includes key s itself: average over the other d keys only"),
    (lambda scores, d, s: (scores[d, s] - (scores[d, : d + 1].sum() - scores[d, s]) / (d + 1)).item(),
     "the other keys' sum is divided by d + 1: there are d other visible keys"),
    (lambda scores, d, s: reference("06.1")(scores.T.contiguous(), d, s),
     "rows and columns are swapped: scores[d] is query d's row of scores over the keys"),
]))


# --- 06.2 omega_matrices ------------------------------------------------------------------------------
def _weights(rng: np.random.Generator, d_model: int, d_head: int) -> tuple:
    return (_normal(rng, d_model, d_head, scale=0.3), _normal(rng, d_model, d_head, scale=0.3),
            _normal(rng, d_head), _normal(rng, d_head))


def _model_weights(name: str, layer: int, head: int, compat: bool = False) -> tuple:
    model = checker_model(name, compat=compat)
    return tuple(w[layer, head].detach().double().clone() for w in (model.W_Q, model.W_K, model.b_Q, model.b_K))


def _omega_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", _weights(rng, int(rng.integers(5, 40)), int(rng.integers(2, 6)))) for _ in range(n_random)]
    cases.append(Case("edge", _model_weights(IOI_MODEL, 2, 1, compat=True), "ioi-lm head 2.1 (d_model 128, d_head 32)"))
    cases.append(Case("edge", _weights(rng, 7, 1), "d_head 1"))
    zero_bias = _weights(rng, 9, 3)
    cases.append(Case("edge", (zero_bias[0], zero_bias[1], torch.zeros(3, dtype=torch.float64), zero_bias[3]),
                      "b_Q = 0: the query-bias row is zero, the key-bias column is not"))
    return cases


register(Exercise("06.2", _omega_cases, atol=1e-10, rtol=1e-8, diagnoses=[
    (lambda W_Q, W_K, b_Q, b_K: reference("06.2")(W_Q, W_K, b_K, b_Q),
     "the biases are swapped: Ω_d's extra column is W_Q b_Kᵀ (query times key bias), Ω_s's extra row b_Q W_Kᵀ"),
    (lambda W_Q, W_K, b_Q, b_K: tuple(m / W_Q.shape[1] ** 0.5 for m in reference("06.2")(W_Q, W_K, b_Q, b_K)),
     "scaled by 1/sqrt(d_head): Ω is built from the unscaled score"),
]))


# --- 06.3 signal_terms --------------------------------------------------------------------------------
def _terms_case(rng: np.random.Generator, d_model: int, d_head: int, n_pos: int, d: int | None = None,
                s: int | None = None, kind: str = "random", label: str = "", probe=None) -> Case:
    W_Q, W_K, b_Q, b_K = _weights(rng, d_model, d_head)
    omega_d, omega_s = _omegas(W_Q, W_K, b_Q, b_K)
    d = int(rng.integers(1, n_pos)) if d is None else d
    s = int(rng.integers(0, d + 1)) if s is None else s
    return Case(kind, (omega_d, omega_s, _normal(rng, n_pos, d_model), d, s, d_head), label, probe)


def _truncated(case: Case, rank: int = 2) -> Case:
    case.args = (*case.args[:-1], rank)
    return case


def _omegas(W_Q, W_K, b_Q, b_K) -> tuple[torch.Tensor, torch.Tensor]:
    qk = W_Q @ W_K.T
    return torch.cat([qk, (W_Q @ b_K)[:, None]], 1), torch.cat([qk, (W_K @ b_Q)[None]], 0)


def _exact_sums(call, case: Case) -> str | None:
    omega_d, omega_s, X, d, s, rank = case.args
    query_terms, key_terms = call(*case.args)
    others = [t for t in range(d + 1) if t != s]
    delta = X[s] - X[others].mean(0)
    c = torch.cat([X[d], torch.ones(1, dtype=X.dtype)]) @ omega_s @ delta  # the relative attention, exactly
    query_total = X[d] @ omega_d @ torch.cat([delta, torch.zeros(1, dtype=X.dtype)])
    if not (isinstance(key_terms, torch.Tensor) and key_terms.shape == (rank,)):
        return f"return two tensors of shape [{rank}], one term per kept singular vector"
    if abs(key_terms.sum().item() - c.item()) > 1e-9 * max(1.0, abs(c.item())):
        return (f"the key-side terms sum to {key_terms.sum().item():.6f}, not to the relative attention "
                f"c = {c.item():.6f}: the expansion must be exact")
    if abs(query_total.item() - query_terms.sum().item()) > 1e-9 * max(1.0, abs(query_total.item())):
        return ("the query-side terms do not sum to x_d Ω_d Δ̃_s (= c minus the query-bias part b_Q W_Kᵀ Δ_s): "
                "is Δ̃_s's last coordinate 0?")
    return None


def _terms_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_terms_case(rng, int(rng.integers(8, 40)), int(rng.integers(2, 7)), int(rng.integers(3, 15)))
             for _ in range(n_random)]
    cases += [_terms_case(rng, 10, 3, 5, 1, 0, "edge", "d = 1"),
              _terms_case(rng, 12, 4, 7, 6, 6, "edge", "s = d"),
              _terms_case(rng, 16, 4, 8, 4, 2, "edge", "rows after d exist and must be ignored"),
              _truncated(_terms_case(rng, 18, 5, 8, 6, 1, "edge", "rank 2 of d_head 5: only the top two singular vectors")),
              _terms_case(rng, 20, 5, 9, kind="property", label="the exact sums", probe=_exact_sums),
              _terms_case(rng, 30, 6, 12, 11, 3, "property", "the exact sums, another shape", _exact_sums)]
    return cases


register(Exercise("06.3", _terms_cases, atol=1e-8, rtol=1e-6, diagnoses=[
    (lambda omega_d, omega_s, X, d, s, rank: tuple(t.sort(descending=True).values
                                                   for t in reference("06.3")(omega_d, omega_s, X, d, s, rank)),
     "the terms are sorted: keep them in the SVD's order (largest singular value first)"),
    (lambda omega_d, omega_s, X, d, s, rank: reference("06.3")(omega_s.T, omega_d.T, X, d, s, rank)[::-1],
     "Ω_d and Ω_s are used the wrong way round"),
]))


# --- 06.4 minimal_signal ------------------------------------------------------------------------------
def _signal_case(values, label: str = "", kind: str = "edge") -> Case:
    return Case(kind, (torch.tensor(values, dtype=torch.float64),), label)


def _sum_reaches_total(call, case: Case) -> str | None:
    (terms,) = case.args
    chosen = call(terms.clone())
    if not isinstance(chosen, torch.Tensor) or chosen.dtype != torch.long:
        return "return a LongTensor of indices"
    total = terms.sum().item()
    got = terms[chosen].sum().item()
    if round(got / total, 5) < 1:
        return f"your set's terms sum to {got / total:.3f} of the total: it must reach the total"
    if len(chosen) > 1 and round(terms[chosen[:-1]].sum().item() / total, 5) >= 1:
        return "a smaller set (without your last index) already reaches the total: take the fewest"
    return None


def _signs_and_order(call, case: Case) -> str | None:
    (terms,) = case.args
    base = set(call(terms.clone()).tolist())
    order = torch.from_numpy(np.random.default_rng(len(terms)).permutation(len(terms)))
    moved = {int(order[i]) for i in call(terms.clone()[order]).tolist()}
    if moved != base:
        return "reordering the singular vectors changed which ones are chosen: the set depends only on the terms"
    return None


def _positive_total(rng: np.random.Generator, n: int, shift: float) -> torch.Tensor:
    # n terms around `shift` whose total is positive (a negative total has the empty set as its only answer)
    values = rng.standard_normal(n) + shift
    while values.sum() <= 0.5:
        values = rng.standard_normal(n) + shift
    return torch.from_numpy(values)


def _signal_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        n = int(rng.integers(4, 40))
        values = rng.standard_normal(n) * rng.uniform(0.1, 3, n) + rng.uniform(0, 0.3)
        values[int(rng.integers(n))] += abs(values.sum()) + 1.0  # a positive total
        cases.append(Case("random", (torch.from_numpy(values),)))
    cases += [_signal_case([0.2, 5.0, -0.5, 0.1, 1.0], "a negative term: the top two already pass the total"),
              _signal_case([1.0, 2.0, 3.0], "every term needed"),
              _signal_case([-1.0, 0.5, 0.2], "a negative total: nothing to trace (an empty set)"),
              _signal_case([3.0, 2.0, 1e-9, -1e-12], "a tiny last term: reaching the total to 5 decimals is enough"),
              _signal_case([3.0, 2.0, 1e-4], "a small last term, 2e-5 of the total: it counts at 5 decimals"),
              _signal_case([0.0, 0.0, 4.0, 0.0], "one term carries everything"),
              Case("property", (_positive_total(rng, 24, 0.3),), "a minimal set", _sum_reaches_total),
              Case("property", (_positive_total(rng, 16, 0.5),), "reordered terms", _signs_and_order)]
    return cases


register(Exercise("06.4", _signal_cases, diagnoses=[
    (lambda terms: reference("06.4")(terms.abs()), "the terms are ranked by size |t|: rank the signed terms"),
    (lambda terms: reference("06.4")(terms).sort().values, "the indices are sorted: return them largest term first"),
]))


# --- 06.5 residual_parts ------------------------------------------------------------------------------
def _sum_is_normalized(call, case: Case) -> str | None:
    model, tokens, layer = case.args
    parts = call(model, tokens.clone(), layer)
    if not isinstance(parts, torch.Tensor) or parts.dim() != 3:
        return "return one tensor [n_parts, pos, d_model]"
    _, cache = model.run_with_cache(tokens[None])
    want = cache[f"blocks.{layer}.ln1.hook_normalized"][0]
    error = (parts.sum(0) - want).abs().max().item()
    return None if error < 1e-4 else (
        f"your parts sum to something {error:.3g} away from blocks.{layer}.ln1.hook_normalized: they must add up "
        "to it exactly (centre each part, then divide by ln1.hook_scale)")


def _parts_case(name: str, rng: np.random.Generator, layer: int | None = None, kind: str = "random", label: str = "",
                probe=None) -> Case:
    model = checker_model(name, compat=name == IOI_MODEL)
    tokens = _ioi_tokens(model, rng) if name == IOI_MODEL else random_tokens(model, rng, 1, int(rng.integers(4, 9)))[0]
    layer = int(rng.integers(1, model.cfg.n_layers)) if layer is None else layer
    return Case(kind, (model, tokens, layer), label, probe)


def _parts_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_parts_case(IOI_MODEL, rng) for _ in range(n_random)]
    cases += [_parts_case(IOI_MODEL, rng, 0, "edge", "layer 0: the embedding alone"),
              _parts_case(RANDOM_MODEL, rng, 2, "edge", "a 3-layer model with 3 heads, weights not centred"),
              _parts_case(IOI_MODEL, rng, None, "property", "the parts add up", _sum_is_normalized),
              _parts_case(RANDOM_MODEL, rng, 1, "property", "the parts add up, another model", _sum_is_normalized)]
    return cases


register(Exercise("06.5", _parts_cases, n_random=2, atol=1e-5, rtol=1e-4, diagnoses=[
    (lambda model, tokens, layer: reference("06.5")(model, tokens, layer) * model.run_with_cache(tokens[None])[1][
        f"blocks.{layer}.ln1.hook_scale"][0], "the parts are not divided by the frozen LayerNorm scale (ln1.hook_scale)"),
]))


# --- 06.6 attention_after_edit ------------------------------------------------------------------------
def _edit_case(name: str, rng: np.random.Generator, side: str | None = None, zero: bool = False, kind: str = "random",
               label: str = "", probe=None) -> Case:
    model = checker_model(name, compat=name == IOI_MODEL)
    tokens = _ioi_tokens(model, rng) if name == IOI_MODEL else random_tokens(model, rng, 1, int(rng.integers(5, 10)))[0]
    layer, head = int(rng.integers(model.cfg.n_layers)), int(rng.integers(model.cfg.n_heads))
    d = int(rng.integers(1, len(tokens)))
    s = int(rng.integers(0, d))
    side = side or ("d" if rng.random() < 0.5 else "s")
    delta = torch.zeros(model.cfg.d_model) if zero else torch.from_numpy(
        rng.standard_normal(model.cfg.d_model) * rng.uniform(0.3, 1.5)).float()
    return Case(kind, (model, tokens, layer, head, d, s, delta, side), label, probe)


def _only_q_or_k(call, case: Case) -> str | None:
    model, tokens, layer, head, d, s, delta, side = case.args
    got = float(call(model, tokens.clone(), layer, head, d, s, delta.clone(), side))
    _, cache = model.run_with_cache(tokens[None])
    q = cache["q", layer][0, :, head].double()  # [pos, d_head]
    k = cache["k", layer][0, :, head].double()
    moved = delta.double() @ (model.W_Q if side == "d" else model.W_K)[layer, head].double()
    if side == "d":
        q[d] -= moved
    else:
        k[s] -= moved
    scores = (q[d] @ k[: d + 1].T) / q.shape[-1] ** 0.5
    want = scores.softmax(-1)[s].item()
    return None if abs(got - want) < 1e-4 else (
        f"with side {side!r} only {'q at d' if side == 'd' else 'k at s'} of head {layer}.{head} moves, by delta @ "
        f"{'W_Q' if side == 'd' else 'W_K'}; A[d, s] is then {want:.4f}, yours {got:.4f}")


def _edit_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_edit_case(IOI_MODEL, rng) for _ in range(n_random)]
    cases += [_edit_case(IOI_MODEL, rng, "d", zero=True, kind="edge", label="delta = 0: the clean attention"),
              _edit_case(RANDOM_MODEL, rng, "s", kind="edge", label="a 3-layer model with 3 heads, the key side"),
              _edit_case(RANDOM_MODEL, rng, "d", kind="edge", label="a 3-layer model with 3 heads, the query side"),
              _edit_case(IOI_MODEL, rng, "s", kind="property", label="only k_s moves", probe=_only_q_or_k),
              _edit_case(IOI_MODEL, rng, "d", kind="property", label="only q_d moves", probe=_only_q_or_k)]
    return cases


register(Exercise("06.6", _edit_cases, atol=1e-5, rtol=1e-4, diagnoses=[
    (lambda model, tokens, layer, head, d, s, delta, side: reference("06.6")(model, tokens, layer, head, d, s, -delta,
                                                                              side),
     "delta is added: subtract it (the signal is removed)"),
    (lambda model, tokens, layer, head, d, s, delta, side: reference("06.6")(model, tokens, layer, head, d, s, delta,
                                                                              "s" if side == "d" else "d"),
     "the sides are swapped: side 'd' moves the query at d (hook_q), side 's' the key at s (hook_k)"),
]))
