"""ROME-style causal tracing (Meng et al. 2022) through TransformerBridge hooks.

One batched run holds every run of a trace: row 0 is the clean prompt; then, for the baseline and for
each restoration site, `samples` rows whose subject-token embeddings (hook_embed, before position
embeddings) get Gaussian noise, the same noise in every site's rows (so sites differ only in what is
restored). A site restores the clean row's activations at one position in its rows:

- "resid": the residual stream after block `layer` ("blocks.{layer}.hook_resid_post"), ROME's hidden-state trace;
- "mlp" / "attn": the MLP / attention outputs of the blocks in a window of `window` layers centred on
  `layer` (ROME's window of 10 is for 48-layer GPT-2 XL; a 6-layer model needs a small one).

A site's score is the mean p(answer) at the last position over its rows; `low` is the unrestored
corrupted score and `high` the clean one; its recovered fraction is (score - low) / (high - low).

Before the first block a site restores, its rows are the baseline's rows exactly, so a site's rows join the
run at that block, copied from the baseline's (`resumable` models: GPT-2-shaped ones, whose blocks take the
residual stream alone): each block runs once, on the rows that need it, and a trace costs about half the
arithmetic of one pass over every row. `patch_sites` does the same for patching between two runs.

Averaging over facts (`summarize`) draws fresh noise for every fact (ROME's own code re-seeds for every
call, so every fact sees the same noise and an average over facts is not one over noise), reports
every figure as a mean over facts with a 95 % confidence interval (Student t), and aggregates ROME's way
by token class: first / middle / last subject token, first subsequent token, further tokens, last token.
"""

from __future__ import annotations

import re
import weakref
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from utils.seeds import derive_seed

NOISE_SCALE = 3.0  # noise std = NOISE_SCALE x subject_embedding_std (ROME's "s3")
KINDS = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}
TOKEN_CLASSES = ("first subject", "middle subject", "last subject", "first subsequent", "further", "last")
Site = tuple[int, int]  # (position, layer), restoring the residual stream


@dataclass(frozen=True)
class Trace:
    """A causal trace of one prompt: `scores[position, layer]` = p(answer) with that state restored."""

    scores: torch.Tensor  # [pos, layer]
    low: float
    high: float
    subject_span: tuple[int, int]


@dataclass(frozen=True)
class Estimate:
    """A mean over facts with its 95 % confidence interval, per layer: each [layer]."""

    mean: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def at(self, layer: int) -> tuple[float, float, float]:
        return self.mean[layer].item(), self.low[layer].item(), self.high[layer].item()


@dataclass(frozen=True)
class FactTrace:
    """One fact of a TraceSummary: its recovered fractions {kind: {token class: [layer]}}, p(answer) corrupted
    (`low`) and clean (`high`); a restored p(answer) is low + fraction * (high - low)."""

    fractions: dict[str, dict[str, torch.Tensor]]
    low: float
    high: float


@dataclass(frozen=True)
class TraceSummary:
    """Recovered fractions averaged over `n_facts` recalled facts, fresh noise per fact.

    `by_class[kind][token_class]` is an Estimate per layer (kind: resid, mlp, attn; token classes as
    TOKEN_CLASSES, a class absent from every prompt is left out); `last_subject` and `last_token` are
    the resid rows of the last subject token and the last token. `per_fact` keeps what was averaged, fact
    by fact, so that other estimators can be computed on the same facts and noise draws.
    """

    by_class: dict[str, dict[str, Estimate]]
    mlp_split: Estimate | None  # at the last subject token: [MLP of layer 0 alone, MLPs of layers 1 .. n_layers // 2 - 1]
    n_facts: int
    window: int
    mean_low: float  # corrupted p(answer), mean over facts
    low_range: tuple[float, float]
    mean_high: float  # clean p(answer)
    per_fact: tuple[FactTrace, ...] = ()

    @property
    def last_subject(self) -> Estimate:
        return self.by_class["resid"]["last subject"]

    @property
    def last_token(self) -> Estimate:
        return self.by_class["resid"]["last"]


# ---------------------------------------------------------------- prompts with answers
def word_token(model, word: str) -> int:
    """The token id of `word` as it follows a space (its first token if it splits)."""
    return model.to_tokens(" " + word, prepend_bos=False)[0, 0].item()


def final_logits(model, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Logits at the last token of each text (BOS prepended), batching texts of equal length: -> [n, vocab]."""
    by_length: dict[int, list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for i, text in enumerate(texts):
        tokens = model.to_tokens(text)[0]  # [pos]
        by_length[len(tokens)].append((i, tokens))
    out = torch.empty(len(texts), model.cfg.d_vocab)
    with torch.no_grad():
        for group in by_length.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                logits = model(torch.stack([t for _, t in chunk]))[:, -1]  # [b, vocab]
                out[[i for i, _ in chunk]] = logits.float()
    return out


def recalled(model, prompts: Sequence) -> torch.Tensor:
    """Whether the model's top-1 next token is the answer, for prompts with `.text` and `.answer`: -> [n] bool."""
    logits = final_logits(model, [p.text for p in prompts])  # [n, vocab]
    answers = torch.tensor([word_token(model, p.answer) for p in prompts])  # [n]
    return logits.argmax(-1) == answers



# ---------------------------------------------------------------- tracing
def subject_embedding_std(model, subjects: Sequence[str]) -> float:
    """Std over all coordinates of the token embeddings of `subjects`, each tokenized alone (no BOS)."""
    ids = torch.cat([model.to_tokens(s, prepend_bos=False)[0] for s in subjects])  # [n_tokens]
    return model.W_E[ids].std().item()


def gaussian_noise(shape: tuple[int, ...], std: float, seed: int) -> torch.Tensor:
    """std x N(0, 1) noise of `shape`, drawn by NumPy: the same numbers on every CPU (torch's own normal
    sampler takes a vectorised path whose last bits depend on the instruction set)."""
    return torch.from_numpy(std * np.random.default_rng(seed).standard_normal(shape)).float()


def _embed_hook(span: tuple[int, int], noise: torch.Tensor, first_row: int = 1):
    """Add `noise` [samples, span, d_model] to the subject embeddings of every row from `first_row` on (by default
    every row but the clean one, row 0), the samples repeating in order."""
    start, end = span

    def hook(embed: torch.Tensor, hook) -> torch.Tensor:  # [rows, pos, d_model]
        rows = embed.shape[0] - first_row
        embed = embed.clone()
        embed[first_row:, start:end] += noise.repeat(rows // len(noise), 1, 1).to(embed.dtype)
        return embed

    return hook


def _restore_hook(positions: list[int], rows: list[torch.Tensor]):
    """Copy the clean row's activation at each `positions[i]` into rows `rows[i]`."""

    def hook(activation: torch.Tensor, hook) -> torch.Tensor:  # [rows, pos, d]
        activation = activation.clone()
        for position, row in zip(positions, rows):
            activation[row, position] = activation[0, position]
        return activation

    return hook


def window_layers(layer: int, window: int, n_layers: int) -> range:
    """The `window` layers centred on `layer` (ROME's window), clipped to the model."""
    return range(max(0, layer - window // 2), min(n_layers, layer - window // 2 + window))


def _site_layers(site, window: int, n_layers: int) -> tuple[str, int, list[int]]:
    """A trace_sites site as (kind, position, the layers whose `kind` hook it restores)."""
    kind, position, layer = site if len(site) == 3 else ("resid", *site)
    if isinstance(layer, tuple):
        return kind, position, sorted(layer)
    return kind, position, [layer] if kind == "resid" else list(window_layers(layer, window, n_layers))


def trace_sites(model, tokens: torch.Tensor, span: tuple[int, int], answer: int, sites: Sequence,
                noise_std: float, samples: int = 10, seed: int = 1, window: int = 1) -> tuple[torch.Tensor, float, float]:
    """p(answer) restoring each site, in one batched run: tokens [pos] -> (scores [sites], low, high).

    A site is (position, layer), restoring the residual stream, or (kind, position, layer) with kind
    "resid", "mlp" or "attn" (the last two over `window` layers centred on `layer`, or over exactly the
    layers of `layer` when it is a tuple).
    """
    noise = gaussian_noise((samples, span[1] - span[0], model.cfg.d_model), noise_std, seed)
    restorations = [_site_layers(site, window, model.cfg.n_layers) for site in sites]
    run = _trace_resumed if resumable(model) else _trace_one_pass
    p = run(model, tokens, span, noise, restorations, samples)[:, answer]  # [rows]: clean, baseline, then each site's
    scores = p[1:].view(len(sites) + 1, samples).mean(-1)  # [groups]
    return scores[1:], scores[0].item(), p[0].item()


def _trace_one_pass(model, tokens, span, noise, restorations, samples) -> torch.Tensor:
    """Every row of a trace in one forward pass: -> p [1 + (sites + 1) * samples, vocab]."""
    batch = tokens[None].expand(1 + (len(restorations) + 1) * samples, -1)  # [rows, pos]
    by_hook: dict[str, tuple[list[int], list[torch.Tensor]]] = {}
    for group, (kind, position, layers) in enumerate(restorations, start=1):
        rows = torch.arange(1 + group * samples, 1 + (group + 1) * samples)
        for restored in layers:
            positions, row_sets = by_hook.setdefault(f"blocks.{restored}.{KINDS[kind]}", ([], []))
            positions.append(position)
            row_sets.append(rows)
    hooks = [("hook_embed", _embed_hook(span, noise))] + [(name, _restore_hook(*pr)) for name, pr in by_hook.items()]
    with torch.no_grad():
        logits = model.run_with_hooks(batch, fwd_hooks=hooks)[:, -1]  # [rows, vocab]
    return logits.float().softmax(-1)


def _trace_resumed(model, tokens, span, noise, restorations, samples) -> torch.Tensor:
    """The rows of `_trace_one_pass`, each site's rows joining at the first block it restores (a hidden state
    restored after block l: at block l + 1, copied from the clean row there): -> p [rows, vocab], same order."""
    joins = [min(layers) + (kind == "resid") for kind, _, layers in restorations]  # the block each site's rows join at
    first_row = joining_rows(joins, 1 + samples, samples)  # rows 0 .. samples: clean, then the baseline
    by_hook: dict[str, tuple[list[int], list[torch.Tensor]]] = {}
    for site, (kind, position, layers) in enumerate(restorations):
        for restored in layers[1:] if kind == "resid" else layers:  # restored inside a block the rows run
            positions, row_sets = by_hook.setdefault(f"blocks.{restored}.{KINDS[kind]}", ([], []))
            positions.append(position)
            row_sets.append(torch.arange(first_row[site], first_row[site] + samples))
    with torch.no_grad():
        with model.hooks(fwd_hooks=[("hook_embed", _embed_hook(span, noise))]):
            x = model(tokens[None].expand(1 + samples, -1), stop_at_layer=0)  # [clean + baseline, pos, d_model]

        def enter(site: int, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # rows: the baseline's, [samples, ...]
            kind, position, _ = restorations[site]
            if kind == "resid":
                rows[:, position] = x[0, position]  # the clean hidden state after the block before
            return rows

        with model.hooks(fwd_hooks=[(name, _restore_hook(*pr)) for name, pr in by_hook.items()]):
            logits = run_joining(model, x, slice(1, 1 + samples), joins, enter)  # [rows, vocab]
    order = [0, *range(1, 1 + samples)] + [r for site in range(len(restorations))
                                            for r in range(first_row[site], first_row[site] + samples)]
    return logits[order].float().softmax(-1)


# ---------------------------------------------------------------- running a model from a later block
def joining_rows(joins: Sequence[int], first: int, width: int) -> dict[int, int]:
    """The first of each site's `width` rows when the sites join a run of `first` rows in order of the block they
    join at (joins[site]; ties in site order): {site: row}."""
    order = sorted(range(len(joins)), key=joins.__getitem__)
    return {site: first + i * width for i, site in enumerate(order)}


def run_joining(model, x: torch.Tensor, base: slice, joins: Sequence[int], enter) -> torch.Tensor:
    """Logits at the last position [rows, vocab] of the residual stream x [rows, pos, d_model] entering block 0,
    run through every block; before block joins[site], the site's rows join at the end (rows `joining_rows`
    gives): a copy of x[base] there, edited by enter(site, rows, x). Hooks the caller attached fire as usual."""
    for layer in range(model.cfg.n_layers + 1):
        joining = [enter(site, x[base].clone(), x) for site, join in enumerate(joins) if join == layer]
        x = torch.cat([x, *joining]) if joining else x
        if layer < model.cfg.n_layers:
            x = run_block(model, layer, x)
    return last_logits(model, x)


_RESUMABLE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def run_block(model, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Block `layer` on the residual stream x [rows, pos, d_model] (its hooks fire as in a forward pass)."""
    out = model.blocks[layer](x)
    return out[0] if isinstance(out, tuple) else out


def last_logits(model, x: torch.Tensor) -> torch.Tensor:
    """Logits at the last position from the residual stream after the last block: x [rows, pos, d_model] -> [rows, vocab]."""
    return model.unembed(model.ln_final(x))[:, -1]


def resumable(model) -> bool:
    """Whether a forward pass of `model` can be run block by block on the residual stream alone (learned
    positions added before block 0, as in GPT-2; no rotary or relative positions that blocks are handed),
    checked once per model against its own forward pass on a short prompt. Otherwise tracing and patching
    run every row through every block in one pass."""
    try:
        return _RESUMABLE[model]
    except (KeyError, TypeError):  # not checked yet, or not weakly referenceable (then checked every time)
        pass
    try:
        tokens = (torch.arange(min(10, model.cfg.n_ctx)) * 7 % model.cfg.d_vocab)[None].repeat(2, 1)  # [2, pos]
        with torch.no_grad():
            x = model(tokens, stop_at_layer=0)
            for block in range(model.cfg.n_layers):
                x = run_block(model, block, x)
            expected = model(tokens)[:, -1]
        ok = bool(torch.allclose(last_logits(model, x), expected, rtol=1e-5, atol=1e-5))
    except Exception:  # noqa: BLE001 - any architecture whose blocks want more than the residual
        ok = False
    try:
        _RESUMABLE[model] = ok
    except TypeError:
        pass
    return ok


def trace(model, tokens: torch.Tensor, span: tuple[int, int], answer: int, noise_std: float,
          samples: int = 10, seed: int = 1, kind: str = "resid", window: int = 1) -> Trace:
    """The full [pos, layer] restoration table of one `kind` for one prompt, tokens [pos] (BOS included)."""
    n_pos, n_layers = len(tokens), model.cfg.n_layers
    sites = [(kind, pos, layer) for pos in range(n_pos) for layer in range(n_layers)]
    scores, low, high = trace_sites(model, tokens, span, answer, sites, noise_std, samples, seed, window)
    return Trace(scores.view(n_pos, n_layers), low, high, span)


def trace_prompt(model, prompt, noise_std: float, samples: int = 10, seed: int = 1, kind: str = "resid",
                 window: int = 1) -> Trace:
    """`trace` for a prompt with `.text`, `.subject_span` and `.answer` (utils.corpus.FactPrompt)."""
    tokens = model.to_tokens(prompt.text)[0]  # [pos]
    return trace(model, tokens, tuple(prompt.subject_span), word_token(model, prompt.answer), noise_std, samples,
                 seed, kind, window)


def token_classes(span: tuple[int, int], n_pos: int) -> dict[str, list[int]]:
    """ROME's token classes of a prompt of `n_pos` tokens whose subject is positions [start, end)."""
    start, end = span
    classes = {"first subject": [start], "middle subject": list(range(start + 1, end - 1)),
               "last subject": [end - 1], "first subsequent": [end] if end < n_pos - 1 else [],
               "further": list(range(end + 1, n_pos - 1)), "last": [n_pos - 1]}
    if end - start == 1:
        classes["first subject"] = []  # a one-token subject is its own last token
    return {name: positions for name, positions in classes.items() if positions}


def estimate(rows: list[torch.Tensor]) -> Estimate:
    """Mean over facts and its 95 % Student-t interval: rows of [layer] -> Estimate."""
    values = torch.stack(rows).double()  # [fact, layer]
    mean = values.mean(0)
    if len(rows) < 2:
        return Estimate(mean.float(), mean.float(), mean.float())
    half = stats.t.ppf(0.975, len(rows) - 1) * values.std(0) / len(rows) ** 0.5
    return Estimate(mean.float(), (mean - half).float(), (mean + half).float())


def mlp_split_layers(n_layers: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two MLP groups `summarize` compares at the last subject token: layer 0, and layers 1 .. n // 2 - 1."""
    return (0,), tuple(range(1, max(2, n_layers // 2)))


def fact_fractions(model, prompt, noise_std: float, samples: int, seed: int, kinds: Sequence[str],
                   window: int, only: Sequence[str] | dict[str, Sequence[str]] = TOKEN_CLASSES,
                   split: bool = True) -> tuple[dict[str, dict[str, torch.Tensor]], torch.Tensor | None, float, float]:
    """Recovered fractions for one prompt, all from one noise draw: {kind: {class: [layer]}} for the token
    classes in `only` (for every kind, or {kind: classes}), the MLP split at the last subject token [2] (None
    unless `split`), low and high."""
    tokens = model.to_tokens(prompt.text)[0]  # [pos]
    span = tuple(prompt.subject_span)
    n_layers = model.cfg.n_layers
    wanted = only if isinstance(only, dict) else dict.fromkeys(kinds, only)
    sites, traced = [], {}  # kind -> (its classes, its traced positions, its first site)
    for kind in kinds:
        classes = {name: positions for name, positions in token_classes(span, len(tokens)).items() if name in wanted[kind]}
        positions = sorted({pos for where in classes.values() for pos in where})
        traced[kind] = classes, positions, len(sites)
        sites += [(kind, pos, layer) for pos in positions for layer in range(n_layers)]
    if split:
        sites += [("mlp", span[1] - 1, layers) for layers in mlp_split_layers(n_layers)]
    scores, low, high = trace_sites(model, tokens, span, word_token(model, prompt.answer), sites, noise_std,
                                    samples, seed, window)
    fractions = (scores - low) / (high - low)  # [sites]
    table = {}
    for kind, (classes, positions, first) in traced.items():
        grid = fractions[first : first + len(positions) * n_layers].view(len(positions), n_layers)  # [traced position, layer]
        rows = {pos: i for i, pos in enumerate(positions)}
        table[kind] = {name: grid[[rows[p] for p in where]].mean(0) for name, where in classes.items()}
    return table, fractions[-2:] if split else None, low, high


def summarize(model, prompts: Sequence, n_facts: int = 100, samples: int = 10, seed: int = 1,
              noise_scale: float = NOISE_SCALE, kinds: Sequence[str] = ("resid", "mlp", "attn"),
              window: int = 3, only: Sequence[str] | dict[str, Sequence[str]] = TOKEN_CLASSES, progress: bool = True,
              noise_std: float | None = None, split: bool = True) -> TraceSummary:
    """Recovered fractions by kind, token class and layer, averaged over the first `n_facts` prompts the
    model recalls correctly (prompts with `.text`, `.subject`, `.subject_span`, `.answer`), each fact with
    its own noise draw. Noise std = noise_scale x the std of all the prompts' subject embeddings. `only`
    restricts the trace to some token classes, for every kind or per kind ({kind: classes}): fewer sites, a
    faster trace; `noise_std`, when given, replaces the noise level computed from the prompts' subjects;
    `split=False` leaves out the MLP split (`mlp_split` is then None)."""
    if noise_std is None:
        noise_std = noise_scale * subject_embedding_std(model, sorted({p.subject for p in prompts}))
    correct = [p for p, ok in zip(prompts, recalled(model, prompts).tolist()) if ok][:n_facts]
    if not correct:
        raise ValueError("the model recalls none of these facts: nothing to trace")
    tables, splits, lows, highs = [], [], [], []
    for i, prompt in enumerate(tqdm(correct, desc="causal trace", mininterval=5, disable=not progress)):
        table, mlp_split, low, high = fact_fractions(model, prompt, noise_std, samples, derive_seed(seed, "fact", i),
                                                     kinds, window, only, split)
        tables.append(table), splits.append(mlp_split), lows.append(low), highs.append(high)
    by_class = {kind: {name: estimate([t[kind][name] for t in tables if name in t[kind]])
                       for name in TOKEN_CLASSES if any(name in t[kind] for t in tables)} for kind in kinds}
    return TraceSummary(by_class, estimate(splits) if split else None, len(correct), window, sum(lows) / len(lows),
                        (min(lows), max(lows)), sum(highs) / len(highs),
                        tuple(FactTrace(*fact) for fact in zip(tables, lows, highs)))


# ---------------------------------------------------------------- severing a path (ROME's Figure 3)
SEVERED = {"none": None, "later MLPs": "hook_mlp_out", "later attention": "hook_attn_out"}


def severed_trace(model, prompt, noise_std: float, layers: Sequence[int], samples: int = 2, seed: int = 1) -> torch.Tensor:
    """ROME's Figure 3 at the last subject token: the recovered fraction when its hidden state after block l is
    restored, with nothing else changed ("none") or with the MLP ("later MLPs") or attention ("later attention")
    outputs at that token in every block after l kept at their corrupted values, so that the restored state cannot
    act through them. One fact (`.text`, `.subject_span`, `.answer`), `samples` noise draws: -> [SEVERED, layers]."""
    tokens = model.to_tokens(prompt.text)[0]  # [pos]
    (start, end), at = prompt.subject_span, prompt.subject_span[1] - 1
    answer, n_layers = word_token(model, prompt.answer), model.cfg.n_layers
    noise = gaussian_noise((samples, end - start, model.cfg.d_model), noise_std, seed)  # [sample, span, d_model]
    parts = {f"blocks.{l}.{hook}" for l in range(n_layers) for hook in SEVERED.values() if hook}
    states = [f"blocks.{l}.hook_resid_post" for l in layers]
    with torch.no_grad():
        with model.hooks(fwd_hooks=[("hook_embed", _embed_hook((start, end), noise))]):  # row 0 clean, then each draw
            logits, cache = model.run_with_cache(tokens.expand(1 + samples, -1),
                                                 names_filter=lambda name: name in parts or name in states)
        p = logits[:, -1].float().softmax(-1)[:, answer]  # [1 + sample]
        high, low = p[0].item(), p[1:].mean().item()
        groups = [(hook, layer) for hook in SEVERED.values() for layer in layers]  # `samples` rows each

        def restore(resid: torch.Tensor, hook, layer: int) -> torch.Tensor:  # [rows, pos, d_model]
            resid = resid.clone()
            for g, (_, restored) in enumerate(groups):
                if restored == layer:
                    resid[g * samples : (g + 1) * samples, at] = cache[f"blocks.{layer}.hook_resid_post"][0, at]
            return resid

        def keep_corrupted(out: torch.Tensor, hook, name: str, layer: int) -> torch.Tensor:  # [rows, pos, d_model]
            out = out.clone()
            for g, (severed, restored) in enumerate(groups):
                if severed and name.endswith(severed) and layer > restored:
                    out[g * samples : (g + 1) * samples, at] = cache[name][1:, at]
            return out

        hooks = [("hook_embed", _embed_hook((start, end), noise, first_row=0))]  # every row noised, no clean row
        hooks += [(name, partial(restore, layer=l)) for l, name in zip(layers, states)]
        hooks += [(name, partial(keep_corrupted, name=name, layer=int(name.split(".")[1]))) for name in sorted(parts)]
        p = model.run_with_hooks(tokens.expand(len(groups) * samples, -1), fwd_hooks=hooks)[:, -1].float().softmax(-1)
    scores = p[:, answer].view(len(groups), samples).mean(-1)  # [group]
    return ((scores - low) / (high - low)).view(len(SEVERED), len(layers))


# ---------------------------------------------------------------- patching between two runs
def patch_sites(model, source: torch.Tensor, target: torch.Tensor, sites: Sequence[tuple[str, int]]) -> torch.Tensor:
    """Final-position logits of the `target` run with one site each taken from the `source` run, all in
    one batched run. A site is (hook name, position). tokens [pos] (same length) -> [sites, vocab]; or a batch
    of prompt pairs, tokens [batch, pos] -> [batch, sites, vocab] (prompt b's sites from source b)."""
    if source.ndim == 1:
        return patch_sites(model, source[None], target[None], sites)[0]
    names = {name for name, _ in sites}
    with torch.no_grad():
        _, cache = model.run_with_cache(source, names_filter=lambda name: name in names)
        layers = [BLOCK_HOOK.fullmatch(name) for name, _ in sites]
        if all(layers) and resumable(model):
            return _patch_resumed(model, target, cache, sites, [int(m[1]) for m in layers])
        return _patch_one_pass(model, target, cache, sites)


BLOCK_HOOK = re.compile(r"blocks\.(\d+)\..+")  # a hook inside block (group 1)


def _patch_one_pass(model, target: torch.Tensor, cache, sites: Sequence[tuple[str, int]]) -> torch.Tensor:
    """`patch_sites` in one forward pass of batch x sites rows: -> [batch, sites, vocab]."""
    n_prompts, n_sites = len(target), len(sites)
    by_hook: dict[str, list[tuple[int, int]]] = defaultdict(list)  # hook -> [(site, position)]
    for site, (name, position) in enumerate(sites):
        by_hook[name].append((site, position))

    def from_source(name: str):  # looked up by `name`: hook.name may be its canonical alias
        def hook(activation: torch.Tensor, hook) -> torch.Tensor:  # [batch * sites, pos, ...]
            activation = activation.clone()
            rows = activation.view(n_prompts, n_sites, *activation.shape[1:])  # [batch, sites, pos, ...]
            for site, position in by_hook[name]:
                rows[:, site, position] = cache[name][:, position]
            return activation
        return hook

    batch = target.repeat_interleave(n_sites, dim=0)  # [batch * sites, pos]: prompt-major rows
    logits = model.run_with_hooks(batch, fwd_hooks=[(name, from_source(name)) for name in by_hook])[:, -1]
    return logits.float().view(n_prompts, n_sites, -1)  # [batch, sites, vocab]


def _patch_resumed(model, target: torch.Tensor, cache, sites: Sequence[tuple[str, int]], layers: list[int]) -> torch.Tensor:
    """`patch_sites`, each site's rows (one per prompt) joining the target's run at the block that holds its hook;
    a hidden state after block l joins at block l + 1, patched there: -> [batch, sites, vocab]."""
    n_prompts = len(target)
    resid = [name.endswith(".hook_resid_post") for name, _ in sites]
    joins = [layer + after for layer, after in zip(layers, resid)]
    first_row = joining_rows(joins, n_prompts, n_prompts)  # rows 0 .. n_prompts - 1: the target run itself
    by_hook: dict[str, list[tuple[int, int]]] = defaultdict(list)  # hook -> [(first row, position)]
    for site, (name, position) in enumerate(sites):
        if not resid[site]:
            by_hook[name].append((first_row[site], position))

    def from_source(name: str):  # looked up by `name`: hook.name may be its canonical alias
        def hook(activation: torch.Tensor, hook) -> torch.Tensor:  # [rows, pos, ...]
            activation = activation.clone()
            for first, position in by_hook[name]:
                activation[first : first + n_prompts, position] = cache[name][:, position]
            return activation
        return hook

    def enter(site: int, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # rows: the target's, [batch, ...]
        name, position = sites[site]
        if resid[site]:
            rows[:, position] = cache[name][:, position]
        return rows

    x = model(target, stop_at_layer=0)  # [batch, pos, d_model]
    with model.hooks(fwd_hooks=[(name, from_source(name)) for name in by_hook]):
        logits = run_joining(model, x, slice(0, n_prompts), joins, enter).float()  # [rows, vocab]
    order = torch.tensor([first_row[site] + b for b in range(n_prompts) for site in range(len(sites))])
    return logits[order].view(n_prompts, len(sites), -1)  # [batch, sites, vocab]


# ---------------------------------------------------------------- drawing a trace as ROME draws it
COLOURS = {"resid": "Purples", "mlp": "Greens", "attn": "Reds"}
TITLES = {"resid": "single restored layer (hidden state)", "mlp": "restored MLP outputs", "attn": "restored attention outputs"}


def plot_trace(ax, scores: torch.Tensor, str_tokens: Sequence[str], span: tuple[int, int], low: float,
               kind: str = "resid", window: int = 1, answer: str = ""):
    """ROME's heatmap: p(answer) [pos, layer] from the corrupted baseline up, tokens down the rows (subject
    tokens starred), layers across; Purples / Greens / Reds for hidden states / MLP / attention."""
    labels = [f"{t}*" if span[0] <= i < span[1] else t for i, t in enumerate(str_tokens)]
    image = ax.pcolormesh(scores.numpy(), cmap=COLOURS[kind], vmin=low)
    ax.invert_yaxis()
    ax.set_yticks([i + 0.5 for i in range(len(labels))], labels)
    ax.set_xticks([i + 0.5 for i in range(scores.shape[1])], range(scores.shape[1]))
    what = TITLES[kind] + (f", window {window}" if kind != "resid" else "")
    ax.set(title=f"Causal trace: {what}", xlabel="layer (block) restored", ylabel="token")
    ax.figure.colorbar(image, ax=ax, label=f"p({answer})" if answer else "p(answer)")
    return image
