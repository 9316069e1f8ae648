"""ROME-style causal tracing (Meng et al. 2022) through TransformerBridge hooks.

One forward pass holds every run of a trace: row 0 is the clean prompt; then, for the baseline and for
each restoration site, `samples` rows whose subject-token embeddings (hook_embed, before position
embeddings) get Gaussian noise, the same noise in every site's rows (so sites differ only in what is
restored). A site restores the clean row's activations at one position in its rows:

- "resid": the residual stream after block `layer` ("blocks.{layer}.hook_resid_post"), ROME's hidden-state trace;
- "mlp" / "attn": the MLP / attention outputs of the blocks in a window of `window` layers centred on
  `layer` (ROME's window of 10 is for 48-layer GPT-2 XL; a 6-layer model needs a small one).

A site's score is the mean p(answer) at the last position over its rows; `low` is the unrestored
corrupted score and `high` the clean one; its recovered fraction is (score - low) / (high - low).

Averaging over facts (`summarize`) draws fresh noise for every fact (ROME's own code re-seeds for every
call, so every fact sees the same noise and an average over facts is not one over noise), reports
every figure as a mean over facts with a 95 % confidence interval (Student t), and aggregates ROME's way
by token class: first / middle / last subject token, first subsequent token, further tokens, last token.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
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
class TraceSummary:
    """Recovered fractions averaged over `n_facts` recalled facts, fresh noise per fact.

    `by_class[kind][token_class]` is an Estimate per layer (kind: resid, mlp, attn; token classes as
    TOKEN_CLASSES, a class absent from every prompt is left out); `last_subject` and `last_token` are
    the resid rows of the last subject token and the last token.
    """

    by_class: dict[str, dict[str, Estimate]]
    mlp_split: Estimate  # at the last subject token: [MLP of layer 0 alone, MLPs of layers 1 .. n_layers // 2 - 1]
    n_facts: int
    window: int
    mean_low: float  # corrupted p(answer), mean over facts
    low_range: tuple[float, float]
    mean_high: float  # clean p(answer)

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


def _embed_hook(span: tuple[int, int], noise: torch.Tensor):
    """Add `noise` [samples, span, d_model] to the subject embeddings of every row but the clean one."""
    start, end = span

    def hook(embed: torch.Tensor, hook) -> torch.Tensor:  # [rows, pos, d_model]
        rows = embed.shape[0] - 1
        embed = embed.clone()
        embed[1:, start:end] += noise.repeat(rows // len(noise), 1, 1).to(embed.dtype)
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


def trace_sites(model, tokens: torch.Tensor, span: tuple[int, int], answer: int, sites: Sequence,
                noise_std: float, samples: int = 10, seed: int = 1, window: int = 1) -> tuple[torch.Tensor, float, float]:
    """p(answer) restoring each site, in one forward pass: tokens [pos] -> (scores [sites], low, high).

    A site is (position, layer), restoring the residual stream, or (kind, position, layer) with kind
    "resid", "mlp" or "attn" (the last two over `window` layers centred on `layer`, or over exactly the
    layers of `layer` when it is a tuple).
    """
    groups = len(sites) + 1  # group 0: corrupted, nothing restored
    batch = tokens[None].expand(1 + groups * samples, -1)  # [rows, pos]
    noise = gaussian_noise((samples, span[1] - span[0], model.cfg.d_model), noise_std, seed)
    by_hook: dict[str, tuple[list[int], list[torch.Tensor]]] = {}
    for group, site in enumerate(sites, start=1):
        kind, position, layer = site if len(site) == 3 else ("resid", *site)
        rows = torch.arange(1 + group * samples, 1 + (group + 1) * samples)
        if isinstance(layer, tuple):
            layers = layer
        else:
            layers = [layer] if kind == "resid" else window_layers(layer, window, model.cfg.n_layers)
        for restored in layers:
            positions, row_sets = by_hook.setdefault(f"blocks.{restored}.{KINDS[kind]}", ([], []))
            positions.append(position)
            row_sets.append(rows)
    hooks = [("hook_embed", _embed_hook(span, noise))] + [(name, _restore_hook(*pr)) for name, pr in by_hook.items()]
    with torch.no_grad():
        logits = model.run_with_hooks(batch, fwd_hooks=hooks)[:, -1]  # [rows, vocab]
    p = logits.float().softmax(-1)[:, answer]  # [rows]
    scores = p[1:].view(groups, samples).mean(-1)  # [groups]
    return scores[1:], scores[0].item(), p[0].item()


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
                   window: int, only: Sequence[str] = TOKEN_CLASSES) -> tuple[dict[str, dict[str, torch.Tensor]],
                                                                              torch.Tensor, float, float]:
    """Recovered fractions for one prompt, all from one noise draw: {kind: {class: [layer]}} for the token
    classes in `only`, the MLP split at the last subject token [2], low and high."""
    tokens = model.to_tokens(prompt.text)[0]  # [pos]
    span = tuple(prompt.subject_span)
    n_layers = model.cfg.n_layers
    classes = {name: positions for name, positions in token_classes(span, len(tokens)).items() if name in only}
    traced = sorted({pos for positions in classes.values() for pos in positions})
    sites = [(kind, pos, layer) for kind in kinds for pos in traced for layer in range(n_layers)]
    sites += [("mlp", span[1] - 1, layers) for layers in mlp_split_layers(n_layers)]
    scores, low, high = trace_sites(model, tokens, span, word_token(model, prompt.answer), sites, noise_std,
                                    samples, seed, window)
    fractions = (scores - low) / (high - low)  # [sites]
    grid = fractions[:-2].view(len(kinds), len(traced), n_layers)  # [kind, traced position, layer]
    rows = {pos: i for i, pos in enumerate(traced)}
    table = {kind: {name: grid[k, [rows[p] for p in positions]].mean(0) for name, positions in classes.items()}
             for k, kind in enumerate(kinds)}
    return table, fractions[-2:], low, high


def summarize(model, prompts: Sequence, n_facts: int = 100, samples: int = 10, seed: int = 1,
              noise_scale: float = NOISE_SCALE, kinds: Sequence[str] = ("resid", "mlp", "attn"),
              window: int = 3, only: Sequence[str] = TOKEN_CLASSES, progress: bool = True,
              noise_std: float | None = None) -> TraceSummary:
    """Recovered fractions by kind, token class and layer, averaged over the first `n_facts` prompts the
    model recalls correctly (prompts with `.text`, `.subject`, `.subject_span`, `.answer`), each fact with
    its own noise draw. Noise std = noise_scale x the std of all the prompts' subject embeddings. `only`
    restricts the trace to some token classes (fewer sites, a faster trace); `noise_std`, when given,
    replaces the noise level computed from the prompts' subjects."""
    if noise_std is None:
        noise_std = noise_scale * subject_embedding_std(model, sorted({p.subject for p in prompts}))
    correct = [p for p, ok in zip(prompts, recalled(model, prompts).tolist()) if ok][:n_facts]
    if not correct:
        raise ValueError("the model recalls none of these facts: nothing to trace")
    tables, splits, lows, highs = [], [], [], []
    for i, prompt in enumerate(tqdm(correct, desc="causal trace", mininterval=5, disable=not progress)):
        table, split, low, high = fact_fractions(model, prompt, noise_std, samples, derive_seed(seed, "fact", i),
                                                 kinds, window, only)
        tables.append(table), splits.append(split), lows.append(low), highs.append(high)
    by_class = {kind: {name: estimate([t[kind][name] for t in tables if name in t[kind]])
                       for name in TOKEN_CLASSES if any(name in t[kind] for t in tables)} for kind in kinds}
    return TraceSummary(by_class, estimate(splits), len(correct), window, sum(lows) / len(lows),
                        (min(lows), max(lows)), sum(highs) / len(highs))


# ---------------------------------------------------------------- patching between two runs
def patch_sites(model, source: torch.Tensor, target: torch.Tensor, sites: Sequence[tuple[str, int]]) -> torch.Tensor:
    """Final-position logits of the `target` run with one site each taken from the `source` run, all in
    one batch. A site is (hook name, position). tokens [pos] (same length) -> [sites, vocab]; or a batch of
    prompt pairs, tokens [batch, pos] -> [batch, sites, vocab] (prompt b's sites from source b)."""
    if source.ndim == 1:
        return patch_sites(model, source[None], target[None], sites)[0]
    n_prompts, n_sites = len(source), len(sites)
    names = {name for name, _ in sites}
    with torch.no_grad():
        _, cache = model.run_with_cache(source, names_filter=lambda name: name in names)
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
