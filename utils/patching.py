"""Activation patching on IOI, batched; direct logit attribution; the logit lens; attribution patching.

Vocabulary. `clean` is a batch of IOI prompts and `corrupted` their counterfactuals (by default the ABC
prompts of utils.ioi: every later mention of S replaced by a third name), both [batch, pos] with the same
length, so one position means the same word in every prompt of a batch. A *site* is an activation to
patch: a hook name, optionally one position and optionally one head (for `attn.hook_z`, [batch, pos, head,
d_head]). *Denoising* runs the corrupted prompts with one site taken from the clean run; the normalised
logit difference of the result is 0 when nothing changed and 1 when the clean behaviour is back.

`patch` runs every site of a grid in a few batched runs (sites x prompts rows at once) instead of one pass
per site (`patch_loop`, the per-cell loop the notebook builds first); on a model whose blocks take the residual
stream alone (`tracing.resumable`: GPT-2-shaped models) a site's rows join the run at the block that holds its
hook, so the blocks before it run once, for the prompts, not once per site. benchmarks/patching.py checks that
both, and TransformerLens's own patching helpers, give the same numbers.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from utils import ioi, tracing
from utils.tracing import word_token  # re-exported: notebooks call patching.word_token

ROLES = ("IO", "S1", "S1+1", "S2", "end")


class Site(NamedTuple):
    """One activation to patch: `hook` at `position` (None: every position) of `head` (None: every head)."""

    hook: str
    position: int | None = None
    head: int | None = None


@dataclass(frozen=True)
class IOIBatch:
    """IOI prompts of one length with their counterfactuals and the token ids of both names: each [batch]."""

    clean: torch.Tensor  # [batch, pos]
    corrupted: torch.Tensor  # [batch, pos]
    io: torch.Tensor  # [batch]
    s: torch.Tensor  # [batch]
    roles: dict[str, torch.Tensor]  # role -> position of that word in each prompt, [batch]

    def __len__(self) -> int:
        return self.clean.shape[0]


def all_names_replaced(prompt: ioi.Prompt, rng: random.Random) -> str:
    """Wang et al.'s p_ABC ("ABB->XYZ"): IO -> X, S1 -> Y, S's later mentions -> Z, three training names drawn
    from `rng` that are not in the prompt."""
    x, y, z = rng.sample([name for name in ioi.TRAIN_NAMES if name not in (prompt.io, prompt.s)], 3)
    return " ".join(x if w == prompt.io else (y if j == prompt.s1_pos - 1 else z) if w == prompt.s else w
                    for j, w in enumerate(prompt.text.split()))


def ioi_batch(model, prompts: Sequence[ioi.Prompt], counterfactual: str = "abc",
              rng: random.Random | None = None) -> IOIBatch:
    """Token a batch of IOI prompts of one length (e.g. one family). counterfactual "abc": utils.ioi's ABC
    prompts (S's later mentions replaced by a third name C; the course calls it S2 -> C); "new io": IO replaced
    by C wherever it occurs, so the counterfactual asks for C where the prompt asks for IO; "all names": Wang et
    al.'s p_ABC, every name replaced (`all_names_replaced`, names drawn from `rng`, default Random(0))."""
    clean = torch.cat([model.to_tokens(p.text) for p in prompts])  # [batch, pos]
    if counterfactual == "abc":
        texts = [p.abc_text for p in prompts]
    elif counterfactual == "new io":
        texts = [" ".join(p.abc_name if w == p.io else w for w in p.text.split()) for p in prompts]
    elif counterfactual == "all names":
        rng = rng or random.Random(0)
        texts = [all_names_replaced(p, rng) for p in prompts]
    else:
        raise ValueError(f"counterfactual is 'abc', 'new io' or 'all names', not {counterfactual!r}")
    corrupted = torch.cat([model.to_tokens(text) for text in texts])
    if corrupted.shape != clean.shape:
        raise ValueError("the prompts of a batch must all have the same number of tokens (use one family)")
    end = clean.shape[1] - 1
    roles = {"IO": [p.io_pos for p in prompts], "S1": [p.s1_pos for p in prompts],
             "S1+1": [p.s1_pos + 1 for p in prompts], "S2": [p.s2_pos for p in prompts], "end": [end] * len(prompts)}
    return IOIBatch(clean, corrupted, _ids(model, [p.io for p in prompts]), _ids(model, [p.s for p in prompts]),
                    {role: torch.tensor(positions) for role, positions in roles.items()})


def _ids(model, names: Sequence[str]) -> torch.Tensor:
    return torch.tensor([word_token(model, name) for name in names])


def logit_diff(logits: torch.Tensor, io: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """logit(IO) - logit(S) from final-position logits [..., batch, vocab] -> [..., batch]."""
    io, s = io.expand(logits.shape[:-1])[..., None], s.expand(logits.shape[:-1])[..., None]
    return (logits.gather(-1, io) - logits.gather(-1, s))[..., 0]


def normalised(values: torch.Tensor, clean: torch.Tensor | float, corrupted: torch.Tensor | float) -> torch.Tensor:
    """(values - corrupted) / (clean - corrupted): 0 = the corrupted run, 1 = the clean run."""
    return (values - corrupted) / (clean - corrupted)


# ---------------------------------------------------------------- sites of the usual grids
def resid_sites(model, n_pos: int) -> list[Site]:
    """The residual stream entering each block at each position, layer-major: [layer * pos]."""
    return [Site(f"blocks.{layer}.hook_resid_pre", pos) for layer in range(model.cfg.n_layers) for pos in range(n_pos)]


def head_sites(model, n_pos: int | None = None) -> list[Site]:
    """Each head's output (its z, before W_O), at every position at once (n_pos None: [layer * head]) or at
    each position (layer, position, head order: [layer * pos * head])."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if n_pos is None:
        return [Site(f"blocks.{layer}.attn.hook_z", None, head) for layer in range(L) for head in range(H)]
    return [Site(f"blocks.{layer}.attn.hook_z", pos, head) for layer in range(L) for pos in range(n_pos) for head in range(H)]


# ---------------------------------------------------------------- exact patching
def _index(site: Site) -> tuple:
    """The index of `site` in an activation [batch, pos, ...]."""
    index = (slice(None), slice(None) if site.position is None else site.position)
    return index if site.head is None else (*index, site.head)


def patch(model, target: torch.Tensor, source_cache, sites: Sequence[Site], max_rows: int = 256) -> torch.Tensor:
    """Final-position logits of the `target` prompts [batch, pos] run with each site's activation taken
    from `source_cache` (a run of other prompts, same shape), batched: -> [sites, batch, vocab]."""
    per_pass = max(1, max_rows // target.shape[0])  # ~256 rows a pass: larger batches run slower per row on a CPU
    return torch.cat([_patch_together(model, target, source_cache, sites[start : start + per_pass])
                      for start in range(0, len(sites), per_pass)])


def _patch_together(model, target: torch.Tensor, source_cache, sites: Sequence[Site]) -> torch.Tensor:
    """len(sites) copies of `target`, copy i with site i patched, in one batched run: -> [sites, batch, vocab]."""
    layers = [tracing.BLOCK_HOOK.fullmatch(site.hook) for site in sites]
    if all(layers) and tracing.resumable(model):
        return _patch_resumed(model, target, source_cache, sites, [int(m[1]) for m in layers])
    n_prompts = target.shape[0]
    by_hook: dict[str, list[tuple[int, Site]]] = defaultdict(list)
    for i, site in enumerate(sites):
        by_hook[site.hook].append((i, site))

    def from_source(name: str):  # looked up by `name`: inside the hook, hook.name may be an alias
        def hook(activation: torch.Tensor, hook) -> torch.Tensor:  # [sites * batch, pos, ...]
            activation = activation.clone()
            rows = activation.view(len(sites), n_prompts, *activation.shape[1:])  # [sites, batch, pos, ...]
            for i, site in by_hook[name]:
                rows[i][_index(site)] = source_cache[name][_index(site)]
            return activation
        return hook

    with torch.no_grad():
        logits = model.run_with_hooks(target.repeat(len(sites), 1), fwd_hooks=[(name, from_source(name)) for name in by_hook])
    return logits[:, -1].view(len(sites), n_prompts, -1)


def _patch_resumed(model, target: torch.Tensor, source_cache, sites: Sequence[Site], layers: list[int]) -> torch.Tensor:
    """`_patch_together` with each site's copy of the prompts joining the target's run at the block that holds its
    hook (a block's input, hook_resid_pre, patched as the copy joins; hook_resid_post as it joins the next block);
    before that block the copy is the target's run itself: -> [sites, batch, vocab]."""
    n_prompts = target.shape[0]
    entering = [site.hook.endswith(".hook_resid_pre") or site.hook.endswith(".hook_resid_post") for site in sites]
    joins = [layer + site.hook.endswith(".hook_resid_post") for layer, site in zip(layers, sites)]
    first_row = tracing.joining_rows(joins, n_prompts, n_prompts)  # rows 0 .. n_prompts - 1: the target's own run
    by_hook: dict[str, list[tuple[int, Site]]] = defaultdict(list)
    for i, site in enumerate(sites):
        if not entering[i]:
            by_hook[site.hook].append((first_row[i], site))

    def from_source(name: str):  # looked up by `name`: inside the hook, hook.name may be an alias
        def hook(activation: torch.Tensor, hook) -> torch.Tensor:  # [rows, pos, ...]
            activation = activation.clone()
            for first, site in by_hook[name]:
                activation[first : first + n_prompts][_index(site)] = source_cache[name][_index(site)]
            return activation
        return hook

    def enter(i: int, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # rows: the target's, [batch, ...]
        if entering[i]:
            rows[_index(sites[i])] = source_cache[sites[i].hook][_index(sites[i])]
        return rows

    with torch.no_grad():
        x = model(target, stop_at_layer=0)  # [batch, pos, d_model]: the residual stream entering block 0
        with model.hooks(fwd_hooks=[(name, from_source(name)) for name in by_hook]):
            logits = tracing.run_joining(model, x, slice(0, n_prompts), joins, enter)  # [rows, vocab]
    order = torch.cat([torch.arange(first_row[i], first_row[i] + n_prompts) for i in range(len(sites))])
    return logits[order].view(len(sites), n_prompts, -1)


def patch_loop(model, target: torch.Tensor, source_cache, sites: Sequence[Site]) -> torch.Tensor:
    """`patch`, one forward pass per site (the per-cell loop): -> [sites, batch, vocab]."""
    out = []
    for site in sites:
        def hook(activation: torch.Tensor, hook, site=site) -> torch.Tensor:
            activation = activation.clone()
            activation[_index(site)] = source_cache[site.hook][_index(site)]
            return activation

        with torch.no_grad():
            out.append(model.run_with_hooks(target, fwd_hooks=[(site.hook, hook)])[:, -1])
    return torch.stack(out)


def recovered(model, batch: IOIBatch, sites: Sequence[Site], clean_cache=None) -> torch.Tensor:
    """Denoising: the normalised logit difference, per site and prompt, of the corrupted prompts with each
    site restored from the clean run: -> [sites, batch] (normalised per prompt)."""
    with torch.no_grad():
        if clean_cache is None:
            _, clean_cache = model.run_with_cache(batch.clean, names_filter=lambda name: name in {s.hook for s in sites})
        clean_diff = logit_diff(model(batch.clean)[:, -1], batch.io, batch.s)  # [batch]
        corrupted_diff = logit_diff(model(batch.corrupted)[:, -1], batch.io, batch.s)
    patched = logit_diff(patch(model, batch.corrupted, clean_cache, sites), batch.io, batch.s)  # [sites, batch]
    return normalised(patched, clean_diff, corrupted_diff)


# ---------------------------------------------------------------- what each head writes
@torch.no_grad()
def head_outputs(model, cache, position: int = -1) -> torch.Tensor:
    """Each head's output at `position` (z W_O, without the bias): -> [layer, head, batch, d_model]."""
    z = torch.stack([cache[f"blocks.{layer}.attn.hook_z"][:, position] for layer in range(model.cfg.n_layers)])
    return torch.einsum("lbhe,lhem->lhbm", z, model.W_O)  # z: [layer, batch, head, d_head]


def answer_direction(model, io: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The unembedding direction of logit(IO) - logit(S), per prompt: -> [batch, d_model]."""
    return (model.W_U[:, io] - model.W_U[:, s]).T


@torch.no_grad()
def direct_effects(model, cache, io: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Direct logit attribution of each head to logit(IO) - logit(S) at the last position, through the final
    LayerNorm's scale frozen at its clean value (exact with folded LayerNorm: load_model(..., compat=True)):
    -> [layer, head, batch]."""
    scale = cache["ln_final.hook_scale"][:, -1, 0]  # [batch]
    return torch.einsum("lhbm,bm->lhb", head_outputs(model, cache), answer_direction(model, io, s)) / scale


@torch.no_grad()
def mlp_direct_effects(model, cache, io: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Direct logit attribution of each MLP at the last position: -> [layer, batch]."""
    scale = cache["ln_final.hook_scale"][:, -1, 0]  # [batch]
    outs = torch.stack([cache[f"blocks.{layer}.hook_mlp_out"][:, -1] for layer in range(model.cfg.n_layers)])
    return torch.einsum("lbm,bm->lb", outs, answer_direction(model, io, s)) / scale


@torch.no_grad()
def logit_lens(model, cache, io: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual stream at the last position before block 0, ..., after the last block, read through the
    final LayerNorm and the unembedding: (logit(IO) - logit(S), IO's rank over the vocabulary), each
    [layer + 1, batch] (rank 0 = top-1)."""
    stream = torch.stack([cache[f"blocks.{layer}.hook_resid_pre"][:, -1] for layer in range(model.cfg.n_layers)]
                         + [cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, -1]])  # [layer + 1, batch, d_model]
    logits = model.unembed(model.ln_final(stream))  # [layer + 1, batch, vocab]
    io_logit = logits.gather(-1, io.expand(len(stream), -1)[..., None])  # [layer + 1, batch, 1]
    return logit_diff(logits, io, s), (logits > io_logit).sum(-1)


# ---------------------------------------------------------------- attribution patching
def attribution(model, batch: IOIBatch, hooks: Sequence[str]) -> dict[str, torch.Tensor]:
    """Attribution patching (Nanda 2023): the first-order estimate of denoising each element of the
    activations at `hooks`, (clean - corrupted) . d metric / d activation, taken in the corrupted run, with
    metric = the mean normalised logit difference; one forward and one backward pass for every site at
    once: hook -> [batch, pos, ...] (sum over the last axis and the batch for a site's estimate)."""
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(batch.clean, names_filter=lambda name: name in hooks)
        clean_diff = logit_diff(clean_logits[:, -1], batch.io, batch.s)
        corrupted_diff = logit_diff(model(batch.corrupted)[:, -1], batch.io, batch.s)
    saved: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(activation: torch.Tensor, hook) -> torch.Tensor:
            activation.retain_grad()
            saved[name] = activation
            return activation
        return hook

    with torch.enable_grad():
        logits = model.run_with_hooks(batch.corrupted, fwd_hooks=[(name, keep(name)) for name in hooks])
        metric = normalised(logit_diff(logits[:, -1], batch.io, batch.s), clean_diff, corrupted_diff).mean()
        metric.backward()
    return {name: ((clean_cache[name] - saved[name].detach()) * saved[name].grad).detach() for name in hooks}
