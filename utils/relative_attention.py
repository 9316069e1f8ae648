"""Attention-causal communication (Franco & Crovella, NeurIPS 2025): relative attention and QK-SVD signals.

A *firing* is (layer, head, d, s): the head at destination (query) position d attends to source (key)
position s with A[d, s] >= 1 / (d + 1). Its **relative attention** is the unscaled score minus the mean
unscaled score over the other visible keys, c = a'[d, s] - mean_{s' <= d, s' != s} a'[d, s']; it is linear
in the residual stream and c >= 0 for every firing (the 1/n lemma).

Each head's two augmented matrices (query side with the key-bias column, key side with the query-bias
row) have rank <= d_head; their top-d_head SVDs split c exactly into one term per singular vector. The
**signal** of a side is the smallest set of singular vectors whose terms reach the side's total. The
residual stream at ln1 (LayerNorm scale frozen) is a sum of upstream parts: the embedding, every earlier
head's output split by the upstream source token, each attention-output bias and each MLP. Each part's
share of the signal adds up exactly to the signal's share of c, and the 70 % rule keeps the few parts that
carry it; tracing those parts' own firings recursively gives a per-prompt communication graph.

Everything is computed in float64 from a model in compatibility mode (LayerNorm folded, writing weights
centred). Shapes are in comments: [pos] positions, [R] = d_head singular vectors.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

FRACTION = 0.7  # the 70 % rule for upstream parts


# --- the augmented matrices and their SVD --------------------------------------------------------------
@dataclass(frozen=True)
class HeadSVD:
    """Top-R SVDs of one head's query-side (Ω_d) and key-side (Ω_s) augmented matrices, float64."""

    u_d: Tensor  # [d_model, R]
    sigma_d: Tensor  # [R]
    vt_d: Tensor  # [R, d_model + 1]
    u_s: Tensor  # [d_model + 1, R]
    sigma_s: Tensor  # [R]
    vt_s: Tensor  # [R, d_model]

    @property
    def rank(self) -> int:
        return self.sigma_d.shape[0]


def augmented(W_Q: Tensor, W_K: Tensor, b_Q: Tensor, b_K: Tensor) -> tuple[Tensor, Tensor]:
    """Ω_d = [W_Q W_Kᵀ | W_Q b_Kᵀ] [d_model, d_model + 1] and Ω_s = [W_Q W_Kᵀ ; b_Q W_Kᵀ] [d_model + 1, d_model]."""
    W_Q, W_K, b_Q, b_K = (t.double() for t in (W_Q, W_K, b_Q, b_K))
    qk = W_Q @ W_K.T  # [d_model, d_model]
    query_side = torch.cat([qk, (W_Q @ b_K)[:, None]], dim=1)
    key_side = torch.cat([qk, (W_K @ b_Q)[None, :]], dim=0)
    return query_side, key_side


def top_svd(matrix: Tensor, rank: int) -> tuple[Tensor, Tensor, Tensor]:
    u, sigma, vt = torch.linalg.svd(matrix, full_matrices=False)
    return u[:, :rank], sigma[:rank], vt[:rank]


def product_svd(left: Tensor, right: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The SVD of left @ right ([m, R] @ [R, n]) through two thin QRs and an R x R SVD: O((m + n) R²), not O(m n²)."""
    q_left, r_left = torch.linalg.qr(left)  # [m, R], [R, R]
    q_right, r_right = torch.linalg.qr(right.T)  # [n, R], [R, R]
    u, sigma, vt = torch.linalg.svd(r_left @ r_right.T)
    return q_left @ u, sigma, vt @ q_right.T


def head_svd(W_Q: Tensor, W_K: Tensor, b_Q: Tensor, b_K: Tensor) -> HeadSVD:
    """Ω_d = W_Q [W_Kᵀ | b_Kᵀ] and Ω_s = [W_Q ; b_Q] W_Kᵀ are products of rank-R factors: factor them directly."""
    W_Q, W_K, b_Q, b_K = (t.double() for t in (W_Q, W_K, b_Q, b_K))
    query_side = product_svd(W_Q, torch.cat([W_K.T, b_K[:, None]], dim=1))
    key_side = product_svd(torch.cat([W_Q, b_Q[None]], dim=0), W_K.T)
    return HeadSVD(*query_side, *key_side)


_SVDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_svds(model) -> dict[tuple[int, int], HeadSVD]:
    """Every head's HeadSVD, computed once per model (cached; reload the model if you change its weights)."""
    if model not in _SVDS:
        _SVDS[model] = {(l, h): head_svd(model.W_Q[l, h], model.W_K[l, h], model.b_Q[l, h], model.b_K[l, h])
                        for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}
    return _SVDS[model]


# --- relative attention and firings -------------------------------------------------------------------
def unscaled_scores(cache, layer: int) -> Tensor:
    """q·k without the 1/sqrt(d_head) scale and without the mask: [head, query_pos, key_pos], float64."""
    q, k = cache["q", layer][0].double(), cache["k", layer][0].double()  # [pos, head, d_head]
    return torch.einsum("qhe,khe->hqk", q, k)


def relative_row(scores_row: Tensor, d: int) -> Tensor:
    """c for every source s <= d of one query row at once: [d + 1]."""
    visible = scores_row[: d + 1]
    others_mean = (visible.sum() - visible) / d
    return visible - others_mean


def firings(cache, n_layers: int, first_layer: int = 1) -> Tensor:
    """Every (layer, head, d, s) with d >= 1 and A[d, s] >= 1 / (d + 1): LongTensor [n, 4]."""
    found = []
    for layer in range(first_layer, n_layers):
        pattern = cache["pattern", layer][0]  # [head, query_pos, key_pos]
        n_pos = pattern.shape[-1]
        floor = 1.0 / torch.arange(1, n_pos + 1, dtype=pattern.dtype)[None, :, None]  # 1 / (d + 1)
        hit = (pattern >= floor) & torch.ones(n_pos, n_pos, dtype=torch.bool).tril()
        hit[:, 0] = False
        idx = hit.nonzero()  # [n, 3]: head, d, s
        found.append(torch.cat([torch.full((len(idx), 1), layer), idx], dim=1))
    return torch.cat(found) if found else torch.zeros(0, 4, dtype=torch.long)


# --- per-singular-vector terms and the signal ---------------------------------------------------------
def differences(X: Tensor, d: int, s: int) -> tuple[Tensor, Tensor]:
    """Δ_s = x_s - mean of the other visible rows, and Δ̃_s (with a 0 appended): [d_model], [d_model + 1]."""
    visible = X[: d + 1]
    delta = visible[s] - (visible.sum(0) - visible[s]) / d
    return delta, torch.cat([delta, delta.new_zeros(1)])


def terms(svd: HeadSVD, X: Tensor, d: int, s: int) -> tuple[Tensor, Tensor]:
    """Query-side and key-side terms [R], [R]; the key side sums to c, the query side to c - b_Q W_Kᵀ Δ_s."""
    X = X.double()
    delta, delta_aug = differences(X, d, s)
    x_aug = torch.cat([X[d], X.new_ones(1)])
    query_side = (X[d] @ svd.u_d) * svd.sigma_d * (svd.vt_d @ delta_aug)
    key_side = (x_aug @ svd.u_s) * svd.sigma_s * (svd.vt_s @ delta)
    return query_side, key_side


def row_terms(svd: HeadSVD, X: Tensor, d: int) -> tuple[Tensor, Tensor]:
    """terms() for every source s <= d of query d at once: query side [d + 1, R], key side [d + 1, R]."""
    X = X.double()
    visible = X[: d + 1]  # [d + 1, d_model]
    deltas = visible * (1 + 1 / d) - visible.sum(0) / d  # [d + 1, d_model]: x_s - mean of the other rows
    x_aug = torch.cat([X[d], X.new_ones(1)])
    query_side = (X[d] @ svd.u_d) * svd.sigma_d * (deltas @ svd.vt_d[:, :-1].T)  # Δ̃ ends in 0
    key_side = (x_aug @ svd.u_s) * svd.sigma_s * (deltas @ svd.vt_s.T)
    return query_side, key_side


def signal(values: Tensor) -> Tensor:
    """Indices of the fewest terms whose sum reaches the total (greedy, largest first); empty if the total <= 0."""
    total = values.sum()
    if total <= 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.argsort(values, descending=True, stable=True)
    reached = torch.round(torch.cumsum(values[order], 0) / total, decimals=5) >= 1.0
    return order[: int(reached.nonzero()[0]) + 1]


# --- upstream parts -----------------------------------------------------------------------------------
@dataclass
class Parts:
    """The residual stream at `layer`'s ln1 as a sum of parts, centred and divided by the frozen LN scale.

    `values` [n_parts, pos, d_model] sums over parts to ln1.hook_normalized; `labels[i]` is
    ("embed", -1, -1, -1), ("head", layer', head', source token), ("bias", layer', -1, -1) or ("mlp", layer', -1, -1).
    """

    values: Tensor
    labels: list[tuple[str, int, int, int]]
    head_index: dict[tuple[int, int, int], int] = field(default_factory=dict)


def upstream_parts(model, cache, layer: int, scale: Tensor | None = None) -> Parts:
    """Split the residual stream entering block `layer` into its parts (see Parts)."""
    if scale is None:
        scale = cache[f"blocks.{layer}.ln1.hook_scale"][0]
    scale = scale.double()  # [pos, 1]
    n_pos, n_heads = scale.shape[0], model.cfg.n_heads
    pieces, labels = [cache["blocks.0.hook_resid_pre"][0].double()[None]], [("embed", -1, -1, -1)]
    for earlier in range(layer):
        pattern = cache["pattern", earlier][0].double()  # [head, query_pos, key_pos]
        written = torch.einsum("hie,hem->him", cache["v", earlier][0].double().transpose(0, 1),
                               model.W_O[earlier].double())  # [head, key_pos, d_model]: v_i W_O
        by_source = torch.einsum("hti,him->hitm", pattern, written)  # [head, source, pos, d_model]
        pieces.append(by_source.reshape(n_heads * n_pos, n_pos, -1))
        labels += [("head", earlier, h, i) for h in range(n_heads) for i in range(n_pos)]
        pieces.append(model.b_O[earlier].double().expand(1, n_pos, -1))
        pieces.append(cache["mlp_out", earlier][0].double()[None])
        labels += [("bias", earlier, -1, -1), ("mlp", earlier, -1, -1)]
    values = torch.cat(pieces)  # [n_parts, pos, d_model]
    values = (values - values.mean(-1, keepdim=True)) / scale
    head_index = {label[1:]: i for i, label in enumerate(labels) if label[0] == "head"}
    return Parts(values, labels, head_index)


def contributions(parts: Parts, svd: HeadSVD, X: Tensor, d: int, s: int, query_set: Tensor,
                  key_set: Tensor) -> tuple[Tensor, Tensor]:
    """Each part's share of the query-side and key-side signal: [n_parts], [n_parts] (each sums to its signal)."""
    X = X.double()
    _, delta_aug = differences(X, d, s)
    x_aug = torch.cat([X[d], X.new_ones(1)])
    u = svd.u_d[:, query_set]  # [d_model, |S_d|]
    towards_key = (svd.vt_d[query_set] @ delta_aug) * svd.sigma_d[query_set]  # [|S_d|]
    query_share = (parts.values[:, d] @ u) @ towards_key
    v = svd.vt_s[key_set]  # [|S_s|, d_model]
    from_query = (x_aug @ svd.u_s[:, key_set]) * svd.sigma_s[key_set]  # [|S_s|]
    visible = parts.values[:, : d + 1]  # [n_parts, d + 1, d_model]
    moved = visible[:, s] - (visible.sum(1) - visible[:, s]) / d  # [n_parts, d_model]
    key_share = (moved @ v.T) @ from_query
    return query_share, key_share


def keep_fraction(values: Tensor, fraction: float = FRACTION) -> Tensor:
    """The 70 % rule: every value >= the one at which the descending cumulative sum first exceeds fraction x total."""
    total = values.sum()
    if total <= 0:
        return torch.zeros(0, dtype=torch.long)
    ordered = torch.sort(values, descending=True).values
    cut = ordered[int((torch.cumsum(ordered, 0) > fraction * total).nonzero()[0])]
    return (values >= cut).nonzero()[:, 0]


# --- seeds and the communication graph ----------------------------------------------------------------
def final_parts(model, cache) -> Parts:
    """The final residual stream split like upstream_parts, divided by ln_final's scale (for logit attribution)."""
    return upstream_parts(model, cache, model.cfg.n_layers, scale=cache["ln_final.hook_scale"][0])


def seeds(model, cache, direction: Tensor) -> list[tuple[int, int, int]]:
    """Heads (layer, head, source) whose direct logit attribution along `direction` [d_model] at the last
    position is kept: the shortest descending prefix reaching the total, lowered to half the total if needed."""
    parts = final_parts(model, cache)
    dla = parts.values[:, -1] @ direction.double()  # [n_parts]
    total = dla.sum()
    if total <= 0:
        return []
    ordered = torch.sort(dla, descending=True).values
    reached = (torch.cumsum(ordered, 0) >= total).nonzero()
    cut = ordered[int(reached[0])] if len(reached) else ordered[-1]
    cut = min(cut, 0.5 * total)
    return [parts.labels[i][1:] for i in (dla >= cut).nonzero()[:, 0].tolist() if parts.labels[i][0] == "head"]


@dataclass
class Edge:
    upstream: tuple  # (layer, kind, head, write position, source)
    firing: tuple[int, int, int, int]  # (layer, head, d, s) downstream
    side: str  # "d" or "s"
    weight: float


def trace_prompt(model, cache, start: list[tuple[int, int, int, int]], fraction: float = FRACTION,
                 max_firings: int | None = None) -> list[Edge]:
    """Trace firings recursively from `start` [(layer, head, d, s)]: the edges of the communication graph
    (at most `max_firings` firings traced, if given)."""
    svds = model_svds(model)
    parts_by_layer, X_by_layer, patterns, edges = {}, {}, {}, []
    todo, done = list(start), set()
    while todo:
        firing = todo.pop()
        layer, head, d, s = firing
        if firing in done or layer < 1 or d < 1 or (max_firings is not None and len(done) >= max_firings):
            continue
        done.add(firing)
        if layer not in parts_by_layer:
            parts_by_layer[layer] = upstream_parts(model, cache, layer)
            X_by_layer[layer] = cache[f"blocks.{layer}.ln1.hook_normalized"][0].double()
            patterns[layer] = cache["pattern", layer][0]
        if patterns[layer][head, d, s] < 1.0 / (d + 1):
            continue
        parts, X, svd = parts_by_layer[layer], X_by_layer[layer], svds[layer, head]
        t_d, t_s = terms(svd, X, d, s)
        shares = contributions(parts, svd, X, d, s, signal(t_d), signal(t_s))
        for side, share, position in (("d", shares[0], d), ("s", shares[1], s)):
            if t_d.sum() <= 0 and side == "d" or t_s.sum() <= 0 and side == "s":
                continue
            for i in keep_fraction(share, fraction).tolist():
                kind, up_layer, up_head, source = parts.labels[i]
                edges.append(Edge((up_layer, kind, up_head, position, source), firing, side, share[i].item()))
                if kind == "head":
                    todo.append((up_layer, up_head, position, source))
    return edges


def graph(edges: list[Edge], seed_weight: dict | None = None):
    """A networkx DiGraph: node (layer, kind, head, position, source) -> downstream head node, weight = share."""
    import networkx as nx

    g = nx.DiGraph()
    for e in edges:
        layer, head, d, s = e.firing
        g.add_edge(e.upstream, (layer, "head", head, d, s), weight=e.weight, side=e.side)
    for node, weight in (seed_weight or {}).items():
        g.add_edge(node, "logits", weight=weight, side="out")
    return g


# --- interventions ------------------------------------------------------------------------------------
def edit_hook(model, layer: int, head: int, position: int, delta: Tensor, side: str):
    """A hook that subtracts delta [batch, d_model] (LN-normalised space) from one head's input at `position`,
    recomputing only that head's q (side "d") or k (side "s")."""
    weight = (model.W_Q if side == "d" else model.W_K)[layer, head]  # [d_model, d_head]

    def hook(activation: Tensor, hook) -> Tensor:  # [batch, pos, head, d_head]
        edited = activation.clone()
        edited[:, position, head] -= (delta.to(weight.dtype) @ weight).to(activation.dtype)
        return edited

    return f"blocks.{layer}.attn.hook_{'q' if side == 'd' else 'k'}", hook


def projection(basis: Tensor) -> Tensor:
    """The orthogonal projector onto the span of the rows of `basis` [k, d_model] (rows orthonormal)."""
    return basis.T @ basis


def side_basis(svd: HeadSVD, side: str, indices: Tensor) -> Tensor:
    """Orthonormal rows [k, d_model] spanning the chosen singular vectors of one side (residual-stream side)."""
    return svd.u_d[:, indices].T if side == "d" else svd.vt_s[indices]


def random_complement(rng: np.random.Generator, rank: int, chosen: Tensor) -> Tensor:
    """As many indices as `chosen`, drawn (NumPy) from the singular vectors not in it."""
    rest = np.setdiff1d(np.arange(rank), chosen.numpy())
    return torch.from_numpy(rng.choice(rest, size=min(len(chosen), len(rest)), replace=False)).long()


@dataclass(frozen=True)
class Edit:
    """Subtract `delta` [d_model] from head (layer, head)'s LN-normalised input at `position`, recomputing only
    its q (side "d") or k (side "s"); watch A[d, s] of that head."""

    layer: int
    head: int
    position: int
    side: str
    delta: Tensor
    d: int
    s: int


def run_edits(model, tokens: Tensor, edits: list[Edit]) -> tuple[Tensor, Tensor]:
    """Row 0 clean, row 1 + i with edits[i] alone, in one batch: (last-position logits [rows, vocab],
    the watched attention A[d, s] of each edit's head [rows - 1] in its own row, and in the clean row [rows - 1])."""
    if not edits:
        return model(tokens)[:, -1], torch.zeros(2, 0, dtype=torch.float64)
    rows = len(edits) + 1
    batch = tokens.expand(rows, -1)  # [rows, pos]
    by_name: dict[str, list[tuple[int, Edit]]] = {}
    for row, e in enumerate(edits, start=1):
        by_name.setdefault(f"blocks.{e.layer}.attn.hook_{'q' if e.side == 'd' else 'k'}", []).append((row, e))
    patterns: dict[int, Tensor] = {}

    def editor(items):
        def hook(activation: Tensor, hook) -> Tensor:  # [rows, pos, head, d_head]
            edited = activation.clone()
            for row, e in items:
                weight = (model.W_Q if e.side == "d" else model.W_K)[e.layer, e.head]
                edited[row, e.position, e.head] -= (e.delta.to(weight.dtype) @ weight).to(activation.dtype)
            return edited
        return hook

    def keep(layer):
        def hook(pattern: Tensor, hook) -> None:  # [rows, head, query_pos, key_pos]
            patterns[layer] = pattern.detach()
        return hook

    layers = sorted({e.layer for e in edits})
    hooks = [(name, editor(items)) for name, items in by_name.items()]
    hooks += [(f"blocks.{layer}.attn.hook_pattern", keep(layer)) for layer in layers]
    logits = model.run_with_hooks(batch, fwd_hooks=hooks)[:, -1]  # [rows, vocab]
    edited = torch.stack([patterns[e.layer][row, e.head, e.d, e.s] for row, e in enumerate(edits, start=1)])
    clean = torch.stack([patterns[e.layer][0, e.head, e.d, e.s] for e in edits])
    return logits, torch.stack([edited, clean])


def edge_edits(model, cache, edge: Edge, rng: np.random.Generator) -> dict[str, Edit]:
    """For one graph edge: remove its signal, remove as many random complement directions, boost its signal."""
    layer, head, d, s = edge.firing
    svd = model_svds(model)[layer, head]
    X = cache[f"blocks.{layer}.ln1.hook_normalized"][0].double()
    t_d, t_s = terms(svd, X, d, s)
    chosen = signal(t_d if edge.side == "d" else t_s)
    parts = upstream_parts(model, cache, layer)
    up_layer, kind, up_head, position, source = edge.upstream
    index = parts.labels.index((kind, up_layer, up_head, source))
    written = parts.values[index, position]  # [d_model]
    made = {}
    for name, indices, sign in (("signal", chosen, 1.0), ("random", random_complement(rng, svd.rank, chosen), 1.0),
                                ("boost", chosen, -1.0)):
        delta = sign * written @ projection(side_basis(svd, edge.side, indices))
        made[name] = Edit(layer, head, position, edge.side, delta, d, s)
    return made
