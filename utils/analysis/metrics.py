"""Measurements used throughout the course, one implementation each, for any TransformerBridge.

Attention scores come in two layers: pure functions of a pattern tensor [batch, head, query, key]
(testable on synthetic patterns) and model-level wrappers returning one score per head, [layer, head].
The induction, previous-token and sink scores are also exercises of notebooks 01 and 03: this module is
the library's own implementation, and tests/test_metrics.py checks the notebooks' solutions against it.
An instructor-side module: the model card and acceptance tests use it, notebooks do not (a student
release leaves it out, since it contains exercise answers).
Behavioural metrics (losses, IOI, fact recall, the pointer task) take token ids or the prompt objects
of utils.corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from utils import pointer
from utils.pointer import EARLIER_MEMORY, POSITION_CLASSES, clean_spikes, residual_points
from utils.pointer import mean_by_address as attention_by_address
from utils.pointer import position_masks as pointer_position_masks
from utils.tracing import final_logits, recalled, word_token  # noqa: F401 (re-exported)


# ---------------------------------------------------------------- attention patterns


def attention_patterns(model, tokens: torch.Tensor) -> torch.Tensor:
    """Every layer's attention pattern on `tokens` [batch, pos]: -> [layer, batch, head, query, key]."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    return torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])


def key_attention(pattern: torch.Tensor, key: int = 0) -> torch.Tensor:
    """Gu et al.'s alpha_k: mean attention to position `key` from queries t >= key.

    pattern [batch, head, q, k] -> [batch, head].
    """
    return pattern[..., key:, key].mean(dim=-1)


def sink_rate(patterns: torch.Tensor, k: int, eps: float) -> float:
    """Gu et al.'s Sink_k^eps in percent: the share of heads (over every leading axis) with alpha_k > eps.

    patterns [..., query, key] -> a percentage.
    """
    return 100.0 * (key_attention(patterns, k) > eps).float().mean().item()


def induction_score(pattern: torch.Tensor, half: int) -> torch.Tensor:
    """Olsson et al.'s prefix-matching score on [BOS] + r + r, r of length `half`.

    Query 1 + half + i (the second copy of r[i]) should attend to key 2 + i (the token after the first
    copy of r[i]). pattern [batch, head, 1 + 2 * half, 1 + 2 * half] -> [head].
    """
    queries = torch.arange(half + 1, 2 * half + 1)
    return pattern[..., queries, queries - half + 1].mean(dim=(0, -1))


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each position to the one before it: [batch, head, query, key] -> [head]."""
    queries = torch.arange(1, pattern.shape[-1])
    return pattern[..., queries, queries - 1].mean(dim=(0, -1))


def bos_sink_score(pattern: torch.Tensor) -> torch.Tensor:
    """Per-head mean attention to position 0 (alpha_0, averaged over the batch): [batch, head, q, k] -> [head]."""
    return key_attention(pattern, 0).mean(dim=0)



@dataclass(frozen=True)
class HeadScores:
    """Per-head induction and previous-token scores on one batch of [BOS] + r + r, each [layer, head]."""

    induction: torch.Tensor
    previous_token: torch.Tensor


def head_scores(model, repeated: torch.Tensor) -> HeadScores:
    """Induction and previous-token scores of every head on `repeated` [batch, 1 + 2 * half]."""
    half = (repeated.shape[1] - 1) // 2
    patterns = attention_patterns(model, repeated)  # [layer, batch, head, q, k]
    return HeadScores(
        induction=torch.stack([induction_score(p, half) for p in patterns]),
        previous_token=torch.stack([previous_token_score(p) for p in patterns]),
    )


def bos_sink_scores(model, tokens: torch.Tensor, key: int = 0) -> torch.Tensor:
    """Every head's alpha_key (key_attention; position 0, the first token, by default), averaged over the
    batch, on `tokens` [batch, pos] (no padding): -> [layer, head]."""
    return torch.stack([key_attention(p, key).mean(dim=0) for p in attention_patterns(model, tokens)])


def uniform_key_attention(length: int, key: int = 0) -> float:
    """alpha_key of a head attending uniformly over its causal prefix on `length` tokens: the mean over
    queries t >= key of 1 / (t + 1). The baseline a sink score must beat (0.34 at 8 tokens, 0.07 at 64)."""
    return sum(1 / (t + 1) for t in range(key, length)) / (length - key)


def token_class_attention(pattern: torch.Tensor, is_key: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Attention on a class of keys (the ends of documents, say), and what a uniform head would put there.

    pattern [batch, head, q, k], is_key [batch, k] (bool) -> ([head] mean over the batch and the queries
    that can see at least one such key, the uniform head's share over the same queries)."""
    is_key = is_key.float()
    sees = is_key.cumsum(-1) > 0  # [batch, query]: the causal prefix holds at least one such key
    mass = (pattern * is_key[:, None, None, :]).sum(-1)  # [batch, head, query]
    per_head = mass.transpose(0, 1)[:, sees].mean(-1)  # [head]
    n_pos = is_key.shape[-1]
    uniform = is_key.cumsum(-1) / torch.arange(1, n_pos + 1)  # [batch, query]: share of such keys in the prefix
    return per_head, uniform[sees].mean().item()


def document_starts(ends: torch.Tensor) -> torch.Tensor:
    """Where the document each query reads starts, in a context of documents packed after BOS: position 0 in the
    first document, the last token of the previous document in the others. ends [batch, pos] (bool: the last token
    of every whole document, `corpus.full_length_documents`) -> [batch, query]; a query is in a later document
    exactly where its start is > 0."""
    position = torch.arange(ends.shape[-1])
    last_end = torch.where(ends, position, -1).cummax(dim=-1).values  # [batch, pos]: latest document end so far
    return torch.cat([torch.zeros_like(last_end[:, :1]), last_end[:, :-1].clamp(min=0)], dim=1)  # strictly before


def document_start_attention(pattern: torch.Tensor, ends: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Attention on the start of the document each query reads (`document_starts`).

    pattern [batch, head, q, k], ends [batch, k] (bool) -> ([head] mean over the batch and every query after
    position 0, a uniform head's weight on one key it can see, averaged over the same queries)."""
    start = document_starts(ends)  # [batch, query]
    on_start = pattern.gather(-1, start[:, None, :, None].expand(-1, pattern.shape[1], -1, 1))[..., 0]  # [batch, head, q]
    position = torch.arange(ends.shape[-1])
    return on_start[..., 1:].mean(dim=(0, 2)), (1 / (position[1:] + 1.0)).mean().item()


@dataclass(frozen=True)
class SinkReport:
    """First-token attention of every head on one batch, and the share of sink heads beyond layer 0."""

    alpha: torch.Tensor  # [layer, head]: alpha_0, mean over the batch
    share: float  # share of heads in layers >= 1 with alpha_0 >= eps
    uniform: float  # alpha_0 of uniform attention at this length
    length: int
    eps: float

    @property
    def heads(self) -> list[tuple[int, int]]:
        """The sink heads beyond layer 0, as (layer, head)."""
        return [(l + 1, h) for l, h in (self.alpha[1:] >= self.eps).nonzero().tolist()]


def sink_report(model, tokens: torch.Tensor, eps: float = 0.3) -> SinkReport:
    """Sink heads (alpha_0 >= eps) on `tokens` [batch, pos], unpadded, with the uniform baseline."""
    alpha = bos_sink_scores(model, tokens)  # [layer, head]
    return SinkReport(alpha, (alpha[1:] >= eps).float().mean().item(), uniform_key_attention(tokens.shape[1]),
                      tokens.shape[1], eps)


# ---------------------------------------------------------------- losses


def loss_by_position(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss at each position, predicting token t + 1: tokens [batch, pos] -> [pos - 1]."""
    with torch.no_grad():
        logits = model(tokens)[:, :-1]  # [batch, pos - 1, vocab]
    losses = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")  # [batch, pos - 1]
    return losses.mean(dim=0)


def repeated_half_losses(model, repeated: torch.Tensor) -> tuple[float, float]:
    """Mean loss on the first and the second copy of r in [BOS] + r + r (first token of each copy excluded)."""
    half = (repeated.shape[1] - 1) // 2
    losses = loss_by_position(model, repeated)  # losses[t] predicts token t + 1
    return losses[1:half].mean().item(), losses[half + 1 :].mean().item()


def mean_loss(model, tokens: torch.Tensor, ignore_index: int | None = None) -> float:
    """Mean next-token cross-entropy over tokens [batch, pos], skipping targets equal to `ignore_index`."""
    with torch.no_grad():
        logits = model(tokens)[:, :-1]  # [batch, pos - 1, vocab]
    targets = tokens[:, 1:]
    if ignore_index is not None:
        targets = targets.masked_fill(targets == ignore_index, -100)
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100).item()


def move_attention(pattern: torch.Tensor, heads: Sequence[int], source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A copy of `pattern` [batch, head, q, k] in which each of `heads` moves its weight on key source[b, q] onto
    key target[b, q] (source, target [batch, q]; both keys at or before q). Every other weight is unchanged, so
    each row still sums to 1; where source == target nothing moves."""
    moved = pattern.clone()
    for h in heads:
        weight = pattern[:, h].gather(-1, source[..., None])  # [batch, q, 1]
        moved[:, h].scatter_add_(-1, source[..., None], -weight)
        moved[:, h].scatter_add_(-1, target[..., None], weight)
    return moved


def written_norms(model, tokens: torch.Tensor, heads: Sequence[tuple[int, int]]) -> dict[tuple[int, int], torch.Tensor]:
    """For each (layer, head), the norm of what each key would write through it, |v_k W_O|, on tokens [batch, pos]:
    -> {(layer, head): [batch, key]}. Attention weight times this norm is what a key contributes (Kobayashi et al.
    2020); a sink's resting key has a small one (Gu et al. 2024)."""
    layers = {layer for layer, _ in heads}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_v") and
                                        int(name.split(".")[1]) in layers)
    return {(layer, head): (cache[f"blocks.{layer}.attn.hook_v"][:, :, head] @ model.W_O[layer, head]).norm(dim=-1)
            for layer, head in heads}  # v [batch, key, d_head] @ W_O [d_head, d_model]


def context_losses(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each context: tokens [batch, pos] -> [batch]."""
    with torch.no_grad():
        logits = model(tokens)[:, :-1]  # [batch, pos - 1, vocab]
    return F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none").mean(-1)


def moved_attention_hooks(heads: Sequence[tuple[int, int]], source: torch.Tensor, target: torch.Tensor) -> list:
    """hook_pattern hooks that move the (layer, head) pairs' attention from key source[b, q] to key target[b, q]."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    return [(f"blocks.{layer}.attn.hook_pattern",
             lambda pattern, hook, hs=tuple(hs): move_attention(pattern, hs, source, target))
            for layer, hs in by_layer.items()]


def moved_attention_losses(model, tokens: torch.Tensor, heads: Sequence[tuple[int, int]], source: torch.Tensor,
                           target: torch.Tensor) -> torch.Tensor:
    """`context_losses` on tokens [batch, pos] -> [batch] with the (layer, head) pairs' attention moved from key
    source[b, q] to key target[b, q] (`move_attention`): does the model need where a head looks, or only that it
    looks away?"""
    with model.hooks(fwd_hooks=moved_attention_hooks(heads, source, target)):
        return context_losses(model, tokens)


# ---------------------------------------------------------------- prompts with answers


@dataclass(frozen=True)
class IOIResult:
    """Top-1 accuracy (argmax is the indirect object) and mean logit(IO) - logit(S)."""

    top1: float
    logit_diff: float


def ioi_scores(model, prompts: Sequence) -> IOIResult:
    """IOI metrics on prompts with `.text`, `.io` and `.s` (e.g. utils.corpus.ioi_prompts())."""
    logits = final_logits(model, [p.text for p in prompts])  # [n, vocab]
    io = torch.tensor([word_token(model, p.io) for p in prompts])  # [n]
    s = torch.tensor([word_token(model, p.s) for p in prompts])  # [n]
    rows = torch.arange(len(prompts))
    diff = logits[rows, io] - logits[rows, s]  # [n]
    return IOIResult(top1=(logits.argmax(-1) == io).float().mean().item(), logit_diff=diff.mean().item())


def fact_recall(model, prompts: Sequence) -> float:
    """Top-1 fact recall on prompts such as utils.corpus.fact_prompts()."""
    return recalled(model, prompts).float().mean().item()


# ---------------------------------------------------------------- pointer task


@torch.no_grad()
def pointer_predictions(model, inputs: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted target bit for pointer inputs [n, T]: -> [n]."""
    chunks = [model(chunk)[:, -1].argmax(-1) for chunk in inputs.split(batch_size)]  # [b]
    return torch.cat(chunks)


def pointer_accuracy(model, task: pointer.PointerTask, n: int = 10_000, seed: int = 0) -> float:
    """Fraction of `n` fresh pointer sequences whose target the model predicts."""
    inputs, targets = pointer.inputs_and_targets(pointer.sample(task, n, torch.Generator().manual_seed(seed)))
    return (pointer_predictions(model, inputs) == targets).float().mean().item()


def pointer_loss(model, task: pointer.PointerTask, n: int = 10_000, seed: int = 0) -> float:
    """Cross-entropy of the target at the last position on `n` fresh pointer sequences."""
    inputs, targets = pointer.inputs_and_targets(pointer.sample(task, n, torch.Generator().manual_seed(seed)))
    with torch.no_grad():
        return F.cross_entropy(model(inputs)[:, -1], targets).item()


@dataclass(frozen=True)
class FlipTest:
    """How often the prediction changes when the addressed cell, or another memory cell, is flipped."""

    addressed: float
    other: float


def flip_test(model, task: pointer.PointerTask, n: int = 600, seed: int = 0) -> FlipTest:
    """Flip the addressed memory cell (or a random other one) and count changed predictions."""
    generator = torch.Generator().manual_seed(seed)
    inputs, _ = pointer.inputs_and_targets(pointer.sample(task, n, generator))  # [n, T]
    address = pointer.decode_address(inputs, task)  # [n]
    base = pointer_predictions(model, inputs)  # [n]
    addressed = pointer_predictions(model, pointer.flip_cells(inputs, address))
    other = pointer_predictions(model, pointer.flip_cells(inputs, pointer.other_cells(address, task, generator)))
    return FlipTest(addressed=(addressed != base).float().mean().item(), other=(other != base).float().mean().item())


# ---------------------------------------------------------------- pointer task: where the readout looks


def addressed_cell_attention(readout: torch.Tensor, address: torch.Tensor) -> torch.Tensor:
    """Attention of each readout row on its addressed cell.

    readout [layer, n, head, key] (the last query row of every pattern), address [n] -> [n, layer, head].
    """
    n = readout.shape[1]
    return readout[:, torch.arange(n), :, address]  # advanced indices first: [n, layer, head]


@dataclass(frozen=True)
class PointerReadout:
    """Attention from the readout position (the last input position) to the addressed cell.

    `per_head` [layer, head] is the mean over examples; `per_layer` [layer] sums a layer's heads and
    divides by their number (a layer's mean head); `by_address` [M, layer, head] is the mean per address;
    `spikes` [M] says which addresses get a clean single-head spike (one head >= `threshold`), and
    `uniform` is 1/T, the level of a head attending uniformly over the readout's causal prefix.
    """

    per_head: torch.Tensor
    per_layer: torch.Tensor
    by_address: torch.Tensor
    spikes: torch.Tensor
    uniform: float
    threshold: float

    @property
    def spike_count(self) -> int:
        return int(self.spikes.sum())

    @property
    def best(self) -> float:
        """The largest mean attention of one head on the addressed cell."""
        return self.per_head.max().item()

    def legible(self, min_spikes: int) -> bool:
        """A legible readout: some head puts >= `threshold` on the addressed cell on average, and at least
        `min_spikes` addresses get a clean single-head spike."""
        return self.best >= self.threshold and self.spike_count >= min_spikes


def pointer_readout(model, task: pointer.PointerTask, n: int = 2000, seed: int = 0,
                    threshold: float = 0.5) -> PointerReadout:
    """Readout attention on the addressed cell, per layer, head and address, on `n` fresh sequences."""
    inputs, _ = pointer.inputs_and_targets(pointer.sample(task, n, torch.Generator().manual_seed(seed)))
    address = pointer.decode_address(inputs, task)  # [n]
    readout = attention_patterns(model, inputs)[:, :, :, -1]  # [layer, n, head, key]
    per_example = addressed_cell_attention(readout, address)  # [n, layer, head]
    by_address = attention_by_address(per_example, address, task.memory_bits)  # [M, layer, head]
    per_head = per_example.mean(0)  # [layer, head]
    return PointerReadout(per_head=per_head, per_layer=per_head.mean(-1), by_address=by_address,
                          spikes=clean_spikes(by_address, threshold), uniform=1 / task.context,
                          threshold=threshold)


# ---------------------------------------------------------------- pointer task: residual patching

@dataclass(frozen=True)
class PatchingRecovery:
    """Residual-patching recovery [point, class]: rows `points` (the embedding, after each layer),
    columns `classes`; `pairs` clean/flipped pairs kept (denominator >= the minimum) of `tried`."""

    recovery: torch.Tensor
    points: list[str]
    classes: list[str]
    pairs: int
    tried: int

    def at(self, point: int, cls: str) -> float:
        return self.recovery[point, self.classes.index(cls)].item()


def logit_margin(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """D = logit[answer] - logit[1 - answer] at the last position: logits [n, T, 2], answer [n] -> [n]."""
    last = logits[:, -1]  # [n, 2]
    rows = torch.arange(len(answer))
    return last[rows, answer] - last[rows, 1 - answer]


@torch.no_grad()
def pointer_patching_recovery(model, task: pointer.PointerTask, n: int = 200, seed: int = 0,
                              min_denominator: float = 1.0) -> PatchingRecovery:
    """Residual patching on clean / flipped pairs (the addressed cell flipped), by (point, position class).

    For each residual point and position class, the clean run's residual at the class's positions
    replaces the flipped run's; recovery = (D_patched - D_corr) / (D_clean - D_corr) with
    D = logit[ans] - logit[1 - ans], ans the clean target; pairs whose denominator is below
    `min_denominator` are dropped, and recovery is the mean over the pairs kept.
    """
    inputs, answer = pointer.inputs_and_targets(pointer.sample(task, n, torch.Generator().manual_seed(seed)))
    corrupted = pointer.flip_cells(inputs, pointer.decode_address(inputs, task))  # [n, T]
    points = residual_points(model)
    clean_logits, cache = model.run_with_cache(inputs, names_filter=lambda name: name in points)
    d_clean = logit_margin(clean_logits, answer)  # [n]
    d_corr = logit_margin(model(corrupted), answer)  # [n]
    denominator = d_clean - d_corr  # [n]
    keep = denominator >= min_denominator  # [n]
    masks = pointer_position_masks(inputs, task)
    classes = [*POSITION_CLASSES, EARLIER_MEMORY]
    table = torch.zeros(len(points), len(classes))
    for i, point in enumerate(points):
        clean = cache[point]  # [n, T, d_model]
        for j, cls in enumerate(classes):
            mask = masks[cls][:, :, None]  # [n, T, 1]

            def patch(activation, hook=None, clean=clean, mask=mask):
                return torch.where(mask, clean, activation)

            d_patched = logit_margin(model.run_with_hooks(corrupted, fwd_hooks=[(point, patch)]), answer)  # [n]
            table[i, j] = ((d_patched - d_corr) / denominator)[keep].mean()
    return PatchingRecovery(recovery=table, points=points, classes=classes, pairs=int(keep.sum()), tried=n)
