"""utils.relative_attention: the exact identities of relative-attention tracing, on ioi-lm in float64.

Expected values come from elsewhere than the code under test: the model's own hooks (attention scores,
attention outputs, logits), brute-force enumeration, and hand-made examples.
"""

from __future__ import annotations

import itertools
from contextlib import redirect_stdout
from io import StringIO

import numpy as np
import pytest
import torch

from utils import ioi
from utils import relative_attention as ra
from utils.models import load_model


@pytest.fixture(scope="module")
def run():
    with redirect_stdout(StringIO()):
        model = load_model("ioi-lm", compat=True).to(torch.float64)
    prompt = ioi.prompts(1, "held-out both", seed=3)[0]
    tokens = model.to_tokens(prompt.text)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return model, prompt, tokens, logits, cache


def _unscaled_from_hooks(model, cache, layer: int) -> torch.Tensor:
    """The model's own attention scores times sqrt(d_head): [head, pos, pos]."""
    return cache["attn_scores", layer][0] * model.cfg.d_head ** 0.5


def test_relative_row_matches_a_loop_over_the_model_scores(run):
    model, _, _, _, cache = run
    for layer in range(model.cfg.n_layers):
        scores = _unscaled_from_hooks(model, cache, layer)
        ours = ra.unscaled_scores(cache, layer)
        for head, d in [(0, 1), (1, 5), (3, scores.shape[-1] - 1)]:
            row = ra.relative_row(ours[head, d], d)
            for s in range(d + 1):
                others = [scores[head, d, t].item() for t in range(d + 1) if t != s]
                assert row[s].item() == pytest.approx(scores[head, d, s].item() - sum(others) / len(others), abs=1e-9)


def test_firings_are_exactly_the_pairs_above_uniform_attention(run):
    model, _, _, _, cache = run
    found = {tuple(f) for f in ra.firings(cache, model.cfg.n_layers).tolist()}
    brute = set()
    for layer in range(1, model.cfg.n_layers):
        pattern = cache["pattern", layer][0]
        for head, d in itertools.product(range(model.cfg.n_heads), range(1, pattern.shape[-1])):
            brute |= {(layer, head, d, s) for s in range(d + 1) if pattern[head, d, s] >= 1 / (d + 1)}
    assert found == brute and found


def test_every_firing_has_non_negative_relative_attention(run):
    model, _, _, _, cache = run
    for layer, head, d, s in ra.firings(cache, model.cfg.n_layers, first_layer=0).tolist():
        assert ra.relative_row(_unscaled_from_hooks(model, cache, layer)[head, d], d)[s] >= -1e-9


def test_the_augmented_matrices_rebuild_the_score(run):
    model, _, _, _, cache = run
    layer, head = 2, 3
    omega_d, omega_s = ra.augmented(model.W_Q[layer, head], model.W_K[layer, head], model.b_Q[layer, head],
                                    model.b_K[layer, head])
    X = cache[f"blocks.{layer}.ln1.hook_normalized"][0]
    b_Q, b_K, W_K, W_Q = model.b_Q[layer, head], model.b_K[layer, head], model.W_K[layer, head], model.W_Q[layer, head]
    scores = _unscaled_from_hooks(model, cache, layer)[head]
    for d, s in [(4, 2), (7, 7), (9, 0)]:
        x_tilde = torch.cat([X[s], torch.ones(1, dtype=X.dtype)])
        query_part = X[d] @ omega_d @ x_tilde  # every term with the query vector
        assert (query_part + b_Q @ W_K.T @ X[s] + b_Q @ b_K).item() == pytest.approx(scores[d, s].item(), abs=1e-9)
        x_d_tilde = torch.cat([X[d], torch.ones(1, dtype=X.dtype)])
        key_part = x_d_tilde @ omega_s @ X[s]  # every term with the key vector
        assert (key_part + X[d] @ W_Q @ b_K + b_Q @ b_K).item() == pytest.approx(scores[d, s].item(), abs=1e-9)
    assert torch.linalg.matrix_rank(omega_d) <= model.cfg.d_head and torch.linalg.matrix_rank(omega_s) <= model.cfg.d_head


def test_terms_sum_to_relative_attention_on_every_firing(run):
    model, _, _, _, cache = run
    svds = ra.model_svds(model)
    assert ra.model_svds(model) is svds  # cached once per model
    for layer, head, d, s in ra.firings(cache, model.cfg.n_layers).tolist()[::7]:
        scores = _unscaled_from_hooks(model, cache, layer)[head, d, : d + 1]
        c = (scores[s] - (scores.sum() - scores[s]) / d).item()
        X = cache[f"blocks.{layer}.ln1.hook_normalized"][0]
        t_d, t_s = ra.terms(svds[layer, head], X, d, s)
        assert t_s.sum().item() == pytest.approx(c, abs=1e-9 * max(1, abs(c)))
        others = [t for t in range(d + 1) if t != s]
        delta = X[s] - X[others].mean(0)
        query_bias = (model.b_Q[layer, head] @ model.W_K[layer, head].T @ delta).item()
        assert t_d.sum().item() == pytest.approx(c - query_bias, abs=1e-9 * max(1, abs(c)))
        rows = ra.row_terms(svds[layer, head], X, d)
        assert torch.allclose(rows[0][s], t_d, atol=1e-10) and torch.allclose(rows[1][s], t_s, atol=1e-10)


def _brute_minimal_size(values: np.ndarray) -> int:
    total = values.sum()
    for size in range(1, len(values) + 1):
        if any(round(sum(values[list(c)]) / total, 5) >= 1 for c in itertools.combinations(range(len(values)), size)):
            return size
    raise AssertionError


def test_the_signal_is_the_smallest_set_reaching_the_total():
    rng = np.random.default_rng(0)
    for _ in range(30):
        values = rng.standard_normal(7) + 0.4
        if values.sum() <= 0:
            assert len(ra.signal(torch.from_numpy(values))) == 0
            continue
        chosen = ra.signal(torch.from_numpy(values))
        assert len(chosen) == _brute_minimal_size(values)
        assert round(values[chosen.numpy()].sum() / values.sum(), 5) >= 1
        order = rng.permutation(7)
        assert set(order[ra.signal(torch.from_numpy(values[order])).numpy()]) == set(chosen.tolist())


def test_the_signal_ignores_sign_flips_of_singular_pairs(run):
    model, _, _, _, cache = run
    svd = ra.model_svds(model)[3, 0]
    flips = torch.from_numpy(np.random.default_rng(1).choice([-1.0, 1.0], size=model.cfg.d_head))
    flipped = ra.HeadSVD(svd.u_d * flips, svd.sigma_d, flips[:, None] * svd.vt_d, svd.u_s * flips, svd.sigma_s,
                         flips[:, None] * svd.vt_s)
    X = cache["blocks.3.ln1.hook_normalized"][0]
    for a, b in zip(ra.terms(svd, X, 10, 2), ra.terms(flipped, X, 10, 2)):
        assert torch.allclose(a, b, atol=1e-10)


def test_upstream_parts_add_up_to_the_normalised_input_and_to_each_attention_output(run):
    model, _, _, _, cache = run
    for layer in range(model.cfg.n_layers):
        parts = ra.upstream_parts(model, cache, layer)
        assert (parts.values.sum(0) - cache[f"blocks.{layer}.ln1.hook_normalized"][0]).abs().max() < 1e-9
    parts = ra.upstream_parts(model, cache, 3)
    scale = cache["blocks.3.ln1.hook_scale"][0]
    for earlier in range(3):
        picked = [i for i, label in enumerate(parts.labels) if label[1] == earlier and label[0] in ("head", "bias")]
        attn_out = cache[f"blocks.{earlier}.hook_attn_out"][0]
        want = (attn_out - attn_out.mean(-1, keepdim=True)) / scale
        assert (parts.values[picked].sum(0) - want).abs().max() < 1e-9


def test_contributions_add_up_to_the_signal_share(run):
    model, _, _, _, cache = run
    svds = ra.model_svds(model)
    parts = {layer: ra.upstream_parts(model, cache, layer) for layer in range(1, model.cfg.n_layers)}
    everything = torch.arange(model.cfg.d_head)
    for layer, head, d, s in ra.firings(cache, model.cfg.n_layers).tolist()[::11]:
        X = cache[f"blocks.{layer}.ln1.hook_normalized"][0]
        t_d, t_s = ra.terms(svds[layer, head], X, d, s)
        S_d, S_s = ra.signal(t_d), ra.signal(t_s)
        to_query, to_key = ra.contributions(parts[layer], svds[layer, head], X, d, s, S_d, S_s)
        assert to_query.sum().item() == pytest.approx(t_d[S_d].sum().item(), abs=1e-9)
        assert to_key.sum().item() == pytest.approx(t_s[S_s].sum().item(), abs=1e-9)
        all_query, all_key = ra.contributions(parts[layer], svds[layer, head], X, d, s, everything, everything)
        assert all_key.sum().item() == pytest.approx(t_s.sum().item(), abs=1e-9)
        assert all_query.sum().item() == pytest.approx(t_d.sum().item(), abs=1e-9)


def test_keep_fraction_on_a_hand_made_example():
    values = torch.tensor([5.0, -1.0, 3.0, 2.0, 1.0])  # total 10: 5 + 3 = 8 > 7 first, so keep values >= 3
    assert sorted(ra.keep_fraction(values).tolist()) == [0, 2]
    assert len(ra.keep_fraction(torch.tensor([-2.0, 1.0]))) == 0


def test_direct_logit_attribution_adds_up_to_the_logit_difference(run):
    model, prompt, _, logits, cache = run
    io, s = model.to_single_token(prompt.io), model.to_single_token(prompt.s)
    direction = model.W_U[:, io] - model.W_U[:, s]
    parts = ra.final_parts(model, cache)
    want = (logits[0, -1, io] - logits[0, -1, s] - model.b_U[io] + model.b_U[s]).item()
    assert (parts.values[:, -1] @ direction).sum().item() == pytest.approx(want, abs=1e-6)
    assert all(len(seed) == 3 for seed in ra.seeds(model, cache, direction))


def test_an_edit_recomputes_only_that_heads_key(run):
    model, _, tokens, logits, cache = run
    layer, head, d, s = 2, 1, 9, 4
    X = cache[f"blocks.{layer}.ln1.hook_normalized"][0]
    edit = ra.Edit(layer, head, s, "s", X[s], d, s)  # the whole input at s removed: k_s becomes b_K
    zero = ra.Edit(layer, head, s, "s", torch.zeros_like(X[s]), d, s)
    new_logits, (A, A_clean) = ra.run_edits(model, tokens, [edit, zero])
    q = cache["q", layer][0, d, head]
    k = cache["k", layer][0, : d + 1, head].clone()
    k[s] = model.b_K[layer, head]
    want = ((k @ q) / model.cfg.d_head ** 0.5).softmax(-1)[s]
    assert A[0].item() == pytest.approx(want.item(), abs=1e-9)
    assert A[1].item() == pytest.approx(cache["pattern", layer][0, head, d, s].item(), abs=1e-12)
    assert A_clean[0].item() == pytest.approx(cache["pattern", layer][0, head, d, s].item(), abs=1e-12)
    assert torch.allclose(new_logits[2], logits[0, -1], atol=1e-9)  # the zero edit is the clean run


def test_tracing_a_prompt_gives_edges_that_point_downstream(run):
    model, prompt, tokens, _, cache = run
    io, s = model.to_single_token(prompt.io), model.to_single_token(prompt.s)
    seeds = ra.seeds(model, cache, model.W_U[:, io] - model.W_U[:, s])
    edges = ra.trace_prompt(model, cache, [(l, h, tokens.shape[1] - 1, src) for l, h, src in seeds])
    assert edges
    for e in edges:
        assert e.upstream[0] < e.firing[0] and e.side in "ds"
        assert e.upstream[3] == (e.firing[2] if e.side == "d" else e.firing[3])  # written where the head reads
    assert ra.graph(edges).number_of_edges() <= len(edges)


def test_the_cached_svd_is_the_svd_of_the_augmented_matrices(run):
    model = run[0]
    for (layer, head), svd in ra.model_svds(model).items():
        omega_d, omega_s = ra.augmented(model.W_Q[layer, head], model.W_K[layer, head], model.b_Q[layer, head],
                                        model.b_K[layer, head])
        assert torch.allclose(svd.u_d * svd.sigma_d @ svd.vt_d, omega_d, atol=1e-12)
        assert torch.allclose(svd.u_s * svd.sigma_s @ svd.vt_s, omega_s, atol=1e-12)
        assert torch.allclose(svd.sigma_d, torch.linalg.svdvals(omega_d)[: model.cfg.d_head], atol=1e-12)
        assert torch.allclose(svd.vt_s @ svd.vt_s.T, torch.eye(model.cfg.d_head, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(svd.u_d.T @ svd.u_d, torch.eye(model.cfg.d_head, dtype=torch.float64), atol=1e-12)
