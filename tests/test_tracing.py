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


@pytest.fixture(scope="module")
def random_lm():
    return build_native(dict(d_model=32, d_head=8, n_heads=4, n_layers=3, n_ctx=16, d_vocab=40, d_mlp=64,
                             act_fn="gelu", normalization_type="LN", seed=3))


@pytest.fixture(scope="module")
def facts_lm():
    return load_model("facts-lm")


@pytest.fixture(scope="module")
def course_lm():
    return load_model("course-lm")


def test_the_course_models_resume_and_a_model_that_cannot_falls_back(random_lm, course_lm, facts_lm):
    assert tracing.resumable(random_lm) and tracing.resumable(course_lm)
    assert not tracing.resumable(facts_lm)  # GPT-NeoX: its blocks are handed rotary positions, so one pass
    assert tracing.resumable(load_model("ioi-lm", compat=True))  # folded LayerNorm too
    assert not tracing.resumable(SimpleNamespace(cfg=SimpleNamespace(n_ctx=8, d_vocab=10, n_layers=1)))  # no blocks


@pytest.mark.parametrize("model_name", ["random_lm", "course_lm"])
def test_a_resumed_trace_equals_one_pass_over_every_row(model_name, request, monkeypatch):
    model = request.getfixturevalue(model_name)
    n_layers, last = model.cfg.n_layers, len(TOKENS) - 1
    tokens = TOKENS % model.cfg.d_vocab
    sites = [(pos, layer) for pos in (0, SPAN[0], SPAN[1] - 1, last) for layer in range(n_layers)]  # hidden states
    sites += [("mlp", SPAN[1] - 1, layer) for layer in range(n_layers)] + [("attn", last, layer) for layer in range(n_layers)]
    sites += [("mlp", SPAN[1] - 1, tuple(range(1, n_layers))), ("resid", last, (0, n_layers - 1))]  # several layers
    with torch.no_grad():
        answer = int(model(tokens[None])[0, -1].argmax())  # the clean run's top token, so that the noise can move it
    resumed = tracing.trace_sites(model, tokens, SPAN, answer, sites, noise_std=0.5, samples=3, seed=4, window=3)
    monkeypatch.setattr(tracing, "resumable", lambda m: False)
    single = tracing.trace_sites(model, tokens, SPAN, answer, sites, noise_std=0.5, samples=3, seed=4, window=3)
    assert torch.allclose(resumed[0], single[0], atol=1e-6)
    assert resumed[1:] == pytest.approx(single[1:], abs=1e-6)
    assert abs(single[1] - single[2]) > 1e-3  # the noise does something


def test_resumed_patching_equals_one_pass_and_the_loop(course_lm, monkeypatch):
    source = torch.stack([TOKENS, TOKENS.roll(1), TOKENS.flip(0)]) % course_lm.cfg.d_vocab  # [3, pos]
    target = torch.stack([TOKENS.roll(2), TOKENS, TOKENS.roll(3)]) % course_lm.cfg.d_vocab
    n_layers, last = course_lm.cfg.n_layers, len(TOKENS) - 1
    sites = [(f"blocks.{layer}.{hook}", pos) for layer in range(n_layers) for pos in (SPAN[1] - 1, last)
             for hook in ("hook_resid_post", "hook_resid_pre", "hook_mlp_out", "hook_attn_out")]
    resumed = tracing.patch_sites(course_lm, source, target, sites)  # [3, sites, vocab]
    with torch.no_grad():
        _, cache = course_lm.run_with_cache(source)
    heads = patching.head_sites(course_lm, len(TOKENS)) + patching.resid_sites(course_lm, len(TOKENS))
    heads_resumed = patching.patch(course_lm, target, cache, heads, max_rows=64)  # several chunks
    monkeypatch.setattr(tracing, "resumable", lambda m: False)
    assert torch.allclose(resumed, tracing.patch_sites(course_lm, source, target, sites), atol=1e-4)
    assert torch.allclose(heads_resumed, patching.patch(course_lm, target, cache, heads), atol=1e-4)
    assert torch.allclose(heads_resumed, patching.patch_loop(course_lm, target, cache, heads), atol=1e-4)


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


def _severed_loop(model, prompt, noise_std: float, layer: int, severed: str | None, samples: int, seed: int) -> float:
    """severed_trace's figure for one restored layer, one noise draw at a time, unbatched: the reference."""
    tokens = model.to_tokens(prompt.text)  # [1, pos]
    (start, end), at = prompt.subject_span, prompt.subject_span[1] - 1
    answer = tracing.word_token(model, prompt.answer)
    noise = tracing.gaussian_noise((samples, end - start, model.cfg.d_model), noise_std, seed)
    with torch.no_grad():
        high = model(tokens)[0, -1].softmax(-1)[answer].item()
        _, clean = model.run_with_cache(tokens)
        low, restored = [], []
        for draw in noise:
            def noised(embed, hook, draw=draw):
                embed = embed.clone()
                embed[0, start:end] += draw
                return embed
            with model.hooks(fwd_hooks=[("hook_embed", noised)]):
                logits, corrupted = model.run_with_cache(tokens)
            low.append(logits[0, -1].softmax(-1)[answer].item())
            hooks = [("hook_embed", noised)]
            def put(value):
                def hook(activation, hook):
                    activation = activation.clone()
                    activation[0, at] = value
                    return activation
                return hook
            hooks.append((f"blocks.{layer}.hook_resid_post", put(clean[f"blocks.{layer}.hook_resid_post"][0, at])))
            if severed:
                hooks += [(f"blocks.{l}.{severed}", put(corrupted[f"blocks.{l}.{severed}"][0, at]))
                          for l in range(layer + 1, model.cfg.n_layers)]
            restored.append(model.run_with_hooks(tokens, fwd_hooks=hooks)[0, -1].softmax(-1)[answer].item())
    low_mean = sum(low) / samples
    return (sum(restored) / samples - low_mean) / (high - low_mean)


def test_severed_trace_equals_an_unbatched_loop_and_severs_only_later_blocks(facts_lm):
    """ROME's Figure 3: the batched severed trace against one run per noise draw; "none" is the hidden-state trace;
    after the last block there is nothing left to sever."""
    prompt = facts.prompts(3, "train phrasings", seed=5)[0]
    n_layers, at = facts_lm.cfg.n_layers, prompt.subject_span[1] - 1
    layers = list(range(n_layers))
    severed = tracing.severed_trace(facts_lm, prompt, 0.3, layers, samples=2, seed=7)  # [SEVERED, layer]
    assert severed.shape == (len(tracing.SEVERED), n_layers)
    for c, hook in enumerate(tracing.SEVERED.values()):
        for layer in (0, 2):
            expected = _severed_loop(facts_lm, prompt, 0.3, layer, hook, samples=2, seed=7)
            assert severed[c, layer].item() == pytest.approx(expected, abs=1e-4), (hook, layer)
    tokens = facts_lm.to_tokens(prompt.text)[0]
    hidden, *_ = tracing.trace_sites(facts_lm, tokens, tuple(prompt.subject_span), tracing.word_token(facts_lm, prompt.answer),
                                     [(at, layer) for layer in layers], 0.3, samples=2, seed=7)
    _, low, high = tracing.trace_sites(facts_lm, tokens, tuple(prompt.subject_span),
                                       tracing.word_token(facts_lm, prompt.answer), [(at, 0)], 0.3, samples=2, seed=7)
    assert torch.allclose(severed[0], (hidden - low) / (high - low), atol=1e-5)
    assert torch.allclose(severed[:, -1], severed[0, -1].expand(len(tracing.SEVERED)), atol=1e-6)
    assert (severed[1, :2] - severed[0, :2]).abs().max() > 1e-3  # severing the MLPs does something here
