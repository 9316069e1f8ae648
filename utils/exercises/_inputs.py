"""Inputs that several exercise specs build cases from."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

@lru_cache(maxsize=None)
def checker_model(name: str = "course-lm", compat: bool = False):
    """A course model that hidden cases run on (loaded once per process)."""
    from utils.models import load_model

    return load_model(name, compat=compat)


def random_tokens(model, rng: np.random.Generator, batch: int, length: int) -> torch.Tensor:
    """[batch, length] random tokens from the model's vocabulary, each row starting with BOS."""
    bos = model.tokenizer.bos_token_id
    body = rng.integers(3, model.cfg.d_vocab, size=(batch, length - 1))  # skip BOS, PAD, UNK
    return torch.cat([torch.full((batch, 1), bos), torch.from_numpy(body)], dim=1).long()


def randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape) * scale).float()


def causal_patterns(rng: np.random.Generator, batch: int, heads: int, pos: int) -> torch.Tensor:
    """Random attention patterns under a causal mask: [batch, head, pos, pos], rows summing to 1."""
    future = torch.ones(pos, pos, dtype=torch.bool).triu(diagonal=1)
    return randn(rng, batch, heads, pos, pos, scale=2.0).masked_fill(future, float("-inf")).softmax(-1)
