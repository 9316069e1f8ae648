"""Inputs that several exercise specs build cases from."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from utils.checking import keep_pristine

# A small randomly initialised model whose every size differs from the course models' (course-lm: 6 layers,
# 4 heads, d_model 128, d_head 32; attn-only-2l: 2 layers, 4 heads, d_model 64, d_head 16), so that code with
# a course model's sizes written into it fails. Built offline, the same on every machine.
RANDOM_MODEL = "random-3l3h"
_RANDOM_MODELS = {
    RANDOM_MODEL: {"n_layers": 3, "n_heads": 3, "d_model": 48, "d_head": 8, "d_mlp": 96, "d_vocab": 101, "n_ctx": 32,
                   "act_fn": "gelu", "normalization_type": "LN", "init_mode": "gpt2", "seed": 3},
}


@lru_cache(maxsize=None)
def checker_model(name: str = "course-lm", compat: bool = False):
    """A model that hidden cases run on (loaded once per process, then restored to this state after every case)."""
    from utils.models import build_native, load_model

    with torch.random.fork_rng(devices=[]):  # loading may draw random initial weights: not from the learner's generator
        model = build_native(_RANDOM_MODELS[name]) if name in _RANDOM_MODELS else load_model(name, compat=compat)
        model.eval()
        with torch.no_grad():  # a first forward pass, so that anything a model sets up lazily is in the snapshot
            model(torch.zeros(1, 2, dtype=torch.long))
    return keep_pristine(model)


def bos_id(model) -> int:
    """The model's BOS token id (0 for a model without a tokenizer)."""
    tokenizer = getattr(model, "tokenizer", None)
    return int(tokenizer.bos_token_id) if tokenizer is not None and tokenizer.bos_token_id is not None else 0


def random_tokens(model, rng: np.random.Generator, batch: int, length: int) -> torch.Tensor:
    """[batch, length] random tokens from the model's vocabulary, each row starting with BOS."""
    body = rng.integers(3, model.cfg.d_vocab, size=(batch, length - 1))  # skip BOS, PAD, UNK
    return torch.cat([torch.full((batch, 1), bos_id(model)), torch.from_numpy(body)], dim=1).long()


def randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape) * scale).float()


def causal_patterns(rng: np.random.Generator, batch: int, heads: int, pos: int) -> torch.Tensor:
    """Random attention patterns under a causal mask: [batch, head, pos, pos], rows summing to 1."""
    future = torch.ones(pos, pos, dtype=torch.bool).triu(diagonal=1)
    return randn(rng, batch, heads, pos, pos, scale=2.0).masked_fill(future, float("-inf")).softmax(-1)


def exact_query_ramp(sign: float, pos: int = 6, heads: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k [1, pos, heads, 4] whose scaled scores q_i . k_j / sqrt(4) are huge and exact in float32.

    q_i = c (i + 1) (1, 1, 1, 1) and k_j = sign c (j + 1) (1, 1, 1, 1), with c a power of two:
    sign +1: scores up to about 7e7 rising along each row, so a softmax without the max subtracted
    overflows (the right pattern is one-hot on the diagonal); sign -1: every score below -8e9, so a
    finite mask value (-1e4, -1e9) wins over the real keys (the right pattern is one-hot on key 0).
    """
    c = 2.0 ** 10 if sign > 0 else 2.0 ** 16
    ramp = c * torch.arange(1, pos + 1, dtype=torch.float32)[None, :, None, None]  # [1, pos, 1, 1]
    q = ramp.expand(1, pos, heads, 4).clone()  # [1, pos, heads, 4]
    return q, sign * q


def ioi_structure_batch(model, rng: np.random.Generator):
    """2 to 4 IOI prompts of one structure (one length) of a random split, with their ABC counterfactuals:
    a utils.patching.IOIBatch."""
    from utils import ioi, patching

    split = list(ioi.SPLITS)[int(rng.integers(len(ioi.SPLITS)))]
    families = ioi.SPLITS[split][0]
    prompts = ioi.prompts(4 * len(families), split, seed=int(rng.integers(10**6)))
    family = prompts[int(rng.integers(len(families)))].family
    return patching.ioi_batch(model, [p for p in prompts if p.family == family][: int(rng.integers(2, 5))])
