"""utils.tracing's resumed runs (a site's rows join the run at the first block they change) against one forward
pass over every row, on the course's models and a random one; summarize's per-kind token classes and per-fact values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from utils import facts, patching, tracing
from utils.models import build_native, load_model

TOKENS = torch.tensor([0, 5, 9, 12, 7, 3, 22, 8, 31, 2])  # [pos]
SPAN = (3, 6)
ANSWER = 17


@pytest.fixture(scope="module")
def random_lm():
    return build_native(dict(d_model=32, d_head=8, n_heads=4, n_layers=3, n_ctx=16, d_vocab=40, d_mlp=64,
                             act_fn="gelu", normalization_type="LN", seed=3))


@pytest.fixture(scope="module")
def facts_lm():
    return load_model("facts-lm")


def test_the_course_models_resume_and_a_model_that_cannot_falls_back(random_lm, facts_lm):
    assert tracing.resumable(random_lm) and tracing.resumable(facts_lm)
    assert tracing.resumable(load_model("ioi-lm", compat=True))  # folded LayerNorm too
    assert not tracing.resumable(SimpleNamespace(cfg=SimpleNamespace(n_ctx=8, d_vocab=10, n_layers=1)))  # no blocks


@pytest.mark.parametrize("model_name", ["random_lm", "facts_lm"])
def test_a_resumed_trace_equals_one_pass_over_every_row(model_name, request, monkeypatch):
    model = request.getfixturevalue(model_name)
    n_layers, last = model.cfg.n_layers, len(TOKENS) - 1
    tokens = TOKENS % model.cfg.d_vocab
    sites = [(pos, layer) for pos in (0, SPAN[0], SPAN[1] - 1, last) for layer in range(n_layers)]  # hidden states
    sites += [("mlp", SPAN[1] - 1, layer) for layer in range(n_layers)] + [("attn", last, layer) for layer in range(n_layers)]
    sites += [("mlp", SPAN[1] - 1, tuple(range(1, n_layers))), ("resid", last, (0, n_layers - 1))]  # several layers
    resumed = tracing.trace_sites(model, tokens, SPAN, ANSWER, sites, noise_std=0.5, samples=3, seed=4, window=3)
    monkeypatch.setattr(tracing, "resumable", lambda m: False)
    single = tracing.trace_sites(model, tokens, SPAN, ANSWER, sites, noise_std=0.5, samples=3, seed=4, window=3)
    assert torch.allclose(resumed[0], single[0], atol=1e-6)
    assert resumed[1:] == pytest.approx(single[1:], abs=1e-6)
    assert abs(single[1] - single[2]) > 1e-3  # the noise does something


def test_resumed_patching_equals_one_pass_and_the_loop(facts_lm, monkeypatch):
    source = torch.stack([TOKENS, TOKENS.roll(1), TOKENS.flip(0)]) % facts_lm.cfg.d_vocab  # [3, pos]
    target = torch.stack([TOKENS.roll(2), TOKENS, TOKENS.roll(3)]) % facts_lm.cfg.d_vocab
    n_layers, last = facts_lm.cfg.n_layers, len(TOKENS) - 1
    sites = [(f"blocks.{layer}.{hook}", pos) for layer in range(n_layers) for pos in (SPAN[1] - 1, last)
             for hook in ("hook_resid_post", "hook_resid_pre", "hook_mlp_out", "hook_attn_out")]
    resumed = tracing.patch_sites(facts_lm, source, target, sites)  # [3, sites, vocab]
    with torch.no_grad():
        _, cache = facts_lm.run_with_cache(source)
    heads = patching.head_sites(facts_lm, len(TOKENS)) + patching.resid_sites(facts_lm, len(TOKENS))
    heads_resumed = patching.patch(facts_lm, target, cache, heads, max_rows=64)  # several chunks
    monkeypatch.setattr(tracing, "resumable", lambda m: False)
    assert torch.allclose(resumed, tracing.patch_sites(facts_lm, source, target, sites), atol=1e-4)
    assert torch.allclose(heads_resumed, patching.patch(facts_lm, target, cache, heads), atol=1e-4)
    assert torch.allclose(heads_resumed, patching.patch_loop(facts_lm, target, cache, heads), atol=1e-4)


def test_one_summary_with_classes_per_kind_equals_one_per_kind(facts_lm):
    prompts = facts.prompts(12, "train phrasings", seed=11)
    two = ("last subject", "last")
    common = dict(n_facts=4, samples=2, window=1, progress=False, noise_std=0.25)
    both = tracing.summarize(facts_lm, prompts, kinds=("resid", "mlp", "attn"), split=False,
                             only={"resid": tracing.TOKEN_CLASSES, "mlp": two, "attn": two}, **common)
    hidden = tracing.summarize(facts_lm, prompts, kinds=("resid",), **common)
    parts = tracing.summarize(facts_lm, prompts, kinds=("mlp", "attn"), only=two, **common)
    assert both.mlp_split is None and hidden.mlp_split is not None
    assert set(both.by_class["mlp"]) == set(two) and set(both.by_class["resid"]) == set(hidden.by_class["resid"])
    for kind, summary in (("resid", hidden), ("mlp", parts), ("attn", parts)):
        for name, estimate in summary.by_class[kind].items():
            assert torch.allclose(both.by_class[kind][name].mean, estimate.mean, atol=1e-5)
    assert len(both.per_fact) == both.n_facts == 4
    fact = both.per_fact[0]  # what was averaged, fact by fact
    assert torch.allclose(torch.stack([f.fractions["attn"]["last"] for f in both.per_fact]).mean(0),
                          both.by_class["attn"]["last"].mean, atol=1e-6)
    assert both.mean_low == pytest.approx(sum(f.low for f in both.per_fact) / 4) and fact.high > fact.low
