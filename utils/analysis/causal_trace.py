"""ROME-style causal tracing (Meng et al. 2022) through TransformerBridge hooks.

One forward pass holds every run of a trace: row 0 is the clean prompt; then, for the baseline and for
each restoration site (position, layer), `samples` rows whose subject-token embeddings (hook_embed,
before position embeddings) get Gaussian noise. The noise is drawn once from a seeded generator, so
every site sees the same corruption. A restoration copies the clean row's residual stream after
block `layer` ("blocks.{layer}.hook_resid_post") at `position` into the site's rows. A site's score is
the mean p(answer) at the last position over its rows; `low` is the unrestored corrupted score and
`high` the clean one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm import tqdm

from utils.analysis.metrics import recalled, word_token

NOISE_SCALE = 3.0  # noise std = NOISE_SCALE x subject_embedding_std (ROME's "s3")
Site = tuple[int, int]  # (position, layer)


@dataclass(frozen=True)
class Trace:
    """A causal trace of one prompt: `scores[position, layer]` = p(answer) with that state restored."""

    scores: torch.Tensor  # [pos, layer]
    low: float
    high: float
    subject_span: tuple[int, int]


@dataclass(frozen=True)
class TraceSummary:
    """Mean recovered fraction (score - low) / (high - low) per layer, over `n_facts` recalled facts."""

    last_subject: torch.Tensor  # [layer]
    last_token: torch.Tensor  # [layer]
    n_facts: int
    mean_low: float
    mean_high: float


def subject_embedding_std(model, subjects: Sequence[str]) -> float:
    """Std over all coordinates of the token embeddings of `subjects`, each tokenized alone (no BOS)."""
    ids = torch.cat([model.to_tokens(s, prepend_bos=False)[0] for s in subjects])  # [n_tokens]
    return model.W_E[ids].std().item()


def _noise(shape: tuple[int, ...], std: float, seed: int) -> torch.Tensor:
    return std * torch.randn(shape, generator=torch.Generator().manual_seed(seed))


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
    """Copy the clean row's residual at each `positions[i]` into rows `rows[i]`."""

    def hook(resid: torch.Tensor, hook) -> torch.Tensor:  # [rows, pos, d_model]
        resid = resid.clone()
        for position, row in zip(positions, rows):
            resid[row, position] = resid[0, position]
        return resid

    return hook


def trace_sites(model, tokens: torch.Tensor, span: tuple[int, int], answer: int, sites: Sequence[Site],
                noise_std: float, samples: int = 10, seed: int = 1) -> tuple[torch.Tensor, float, float]:
    """p(answer) restoring each site, in one forward pass: tokens [pos] -> (scores [sites], low, high)."""
    groups = len(sites) + 1  # group 0: corrupted, nothing restored
    batch = tokens[None].expand(1 + groups * samples, -1)  # [rows, pos]
    noise = _noise((samples, span[1] - span[0], model.cfg.d_model), noise_std, seed)
    by_layer: dict[int, tuple[list[int], list[torch.Tensor]]] = {}
    for group, (position, layer) in enumerate(sites, start=1):
        positions, rows = by_layer.setdefault(layer, ([], []))
        positions.append(position)
        rows.append(torch.arange(1 + group * samples, 1 + (group + 1) * samples))
    hooks = [("hook_embed", _embed_hook(span, noise))]
    hooks += [(f"blocks.{layer}.hook_resid_post", _restore_hook(*pr)) for layer, pr in by_layer.items()]
    with torch.no_grad():
        logits = model.run_with_hooks(batch, fwd_hooks=hooks)[:, -1]  # [rows, vocab]
    p = logits.float().softmax(-1)[:, answer]  # [rows]
    scores = p[1:].view(groups, samples).mean(-1)  # [groups]
    return scores[1:], scores[0].item(), p[0].item()


def trace(model, tokens: torch.Tensor, span: tuple[int, int], answer: int, noise_std: float,
          samples: int = 10, seed: int = 1) -> Trace:
    """The full [pos, layer] restoration table for one prompt, tokens [pos] (BOS included)."""
    n_pos, n_layers = len(tokens), model.cfg.n_layers
    sites = [(pos, layer) for pos in range(n_pos) for layer in range(n_layers)]
    scores, low, high = trace_sites(model, tokens, span, answer, sites, noise_std, samples, seed)
    return Trace(scores.view(n_pos, n_layers), low, high, span)


def trace_prompt(model, prompt, noise_std: float, samples: int = 10, seed: int = 1) -> Trace:
    """`trace` for a prompt with `.text`, `.subject_span` and `.answer` (utils.corpus.FactPrompt)."""
    tokens = model.to_tokens(prompt.text)[0]  # [pos]
    return trace(model, tokens, tuple(prompt.subject_span), word_token(model, prompt.answer), noise_std, samples, seed)


def summarize(model, prompts: Sequence, n_facts: int = 100, samples: int = 10, seed: int = 1,
              noise_scale: float = NOISE_SCALE) -> TraceSummary:
    """Recovered fraction per layer at the last subject token and at the last token, averaged over the
    first `n_facts` prompts the model recalls correctly (prompts with `.text`, `.subject`, `.subject_span`,
    `.answer`). Noise std = noise_scale x the std of all the prompts' subject embeddings."""
    noise_std = noise_scale * subject_embedding_std(model, sorted({p.subject for p in prompts}))
    correct = [p for p, ok in zip(prompts, recalled(model, prompts).tolist()) if ok][:n_facts]
    layers = range(model.cfg.n_layers)
    if not correct:
        nan = torch.full((len(layers),), float("nan"))
        return TraceSummary(nan, nan, 0, float("nan"), float("nan"))
    fractions, lows, highs = [], [], []
    for prompt in tqdm(correct, desc="causal trace", mininterval=5):
        tokens = model.to_tokens(prompt.text)[0]  # [pos]
        subject_last, last = prompt.subject_span[1] - 1, len(tokens) - 1
        sites = [(subject_last, layer) for layer in layers] + [(last, layer) for layer in layers]
        scores, low, high = trace_sites(model, tokens, tuple(prompt.subject_span), word_token(model, prompt.answer),
                                        sites, noise_std, samples, seed)
        fractions.append((scores - low) / (high - low))  # [2 * layer]
        lows.append(low), highs.append(high)
    mean = torch.stack(fractions).mean(0).view(2, -1)  # [2, layer]
    return TraceSummary(mean[0], mean[1], len(correct), sum(lows) / len(lows), sum(highs) / len(highs))
