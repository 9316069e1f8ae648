"""utils.patching against independent computations: a per-site loop, TransformerLens's helpers, the model's own logits."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching as tl_patching

from utils import ioi, patching
from utils.models import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("ioi-lm", compat=True)


@pytest.fixture(scope="module")
def batch(model):
    family = ioi.HELD_OUT_FAMILIES[3]
    group = [p for p in ioi.prompts(64, "held-out families", seed=21) if p.family == family][:3]
    return patching.ioi_batch(model, group)


def test_batched_patching_equals_one_pass_per_site_and_transformer_lens(model, batch):
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(batch.clean)
    sites = patching.resid_sites(model, batch.clean.shape[1])
    batched = patching.patch(model, batch.corrupted, clean_cache, sites, max_rows=32)  # several chunks
    looped = patching.patch_loop(model, batch.corrupted, clean_cache, sites)
    assert torch.allclose(batched, looped, atol=1e-5)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return patching.logit_diff(logits[:, -1], batch.io, batch.s).mean()

    theirs = tl_patching.get_act_patch_resid_pre(model, batch.corrupted, clean_cache, metric)  # [layer, pos]
    ours = patching.logit_diff(batched, batch.io, batch.s).mean(-1).view_as(theirs)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_restoring_the_last_position_after_the_last_block_recovers_everything(model, batch):
    last = model.cfg.n_layers - 1
    sites = [patching.Site(f"blocks.{last}.hook_resid_post", batch.clean.shape[1] - 1),
             patching.Site("blocks.0.hook_resid_pre", 1)]  # the first name: the same word in both runs
    recovered = patching.recovered(model, batch, sites)  # [site, prompt]
    assert torch.allclose(recovered[0], torch.ones(len(batch)), atol=1e-4)
    assert torch.allclose(recovered[1], torch.zeros(len(batch)), atol=1e-4)


def test_direct_effects_and_the_logit_lens_add_up_to_the_models_logit_difference(model, batch):
    with torch.no_grad():
        logits, cache = model.run_with_cache(batch.clean)
    want = patching.logit_diff(logits[:, -1], batch.io, batch.s)  # [batch]
    scale = cache["ln_final.hook_scale"][:, -1, 0]
    direction = patching.answer_direction(model, batch.io, batch.s)
    fixed = cache["hook_embed"][:, -1] + cache["hook_pos_embed"][:, -1] + sum(b.attn.b_O for b in model.blocks)
    total = (patching.direct_effects(model, cache, batch.io, batch.s).sum((0, 1))
             + patching.mlp_direct_effects(model, cache, batch.io, batch.s).sum(0)
             + (fixed * direction).sum(-1) / scale + model.b_U[batch.io] - model.b_U[batch.s])
    assert torch.allclose(total, want, atol=1e-3)
    lens_diff, lens_rank = patching.logit_lens(model, cache, batch.io, batch.s)
    assert torch.allclose(lens_diff[-1], want, atol=1e-4)
    assert (lens_rank[-1] == (logits[:, -1] > logits[:, -1].gather(-1, batch.io[:, None])).sum(-1)).all()



def test_all_names_counterfactual_replaces_every_name_with_names_not_in_the_prompt():
    import random

    from utils import ioi

    prompts = ioi.prompts(20, "train", seed=3)
    for p in prompts:
        words, replaced = p.text.split(), patching.all_names_replaced(p, random.Random(1)).split()
        assert len(replaced) == len(words)
        x, y, z = replaced[p.io_pos - 1], replaced[p.s1_pos - 1], replaced[p.s2_pos - 1]
        assert len({x, y, z, p.io, p.s}) == 5  # three new names, none of the prompt's
        assert all(r == w for r, w in zip(replaced, words) if w not in (p.io, p.s))  # nothing else changes
        assert all(r == z for j, (r, w) in enumerate(zip(replaced, words)) if w == p.s and j != p.s1_pos - 1)
