"""Jain & Wallace's attention classifiers, small: embeddings -> encoder -> attention -> linear -> sigmoid.

    encoder "lstm":    a bidirectional LSTM, h_t = [forward_t ; backward_t]  (J&W's contextual encoder)
    encoder "average": h_t = tanh(W e_t + b), each token on its own        (J&W's `average`, W&P's diagnostic)
    attention "additive": alpha = masked_softmax(v^T tanh(W h_t + b))  (W: H -> H/2, no bias on v)
    attention "uniform":  alpha = 1/L over the L real tokens, frozen     (Wiegreffe & Pinter's baseline)
    output: logit = w^T (sum_t alpha_t h_t) + c, y_hat = sigmoid(logit)

Every forward pass can be given the embeddings (for gradients) or the attention weights (for
counterfactual attention) instead of computing them. The zoo trains these on utils.polarity
(`python -m utils.zoo.train_classifiers`); `load_classifier(name)` loads one from models/jw-classifiers/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

FOLDER = "jw-classifiers"
MANIFEST = "classifiers.json"


@dataclass(frozen=True)
class ClassifierConfig:
    vocab_size: int
    encoder: str = "lstm"  # "lstm" or "average"
    attention: str = "additive"  # "additive" or "uniform"
    d_embed: int = 32
    d_hidden: int = 64  # H, the size of h_t (32 per direction for the LSTM)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over positions where mask is True; exactly 0 elsewhere. scores, mask: [batch, pos]."""
    weights = torch.where(mask, scores, -torch.inf).softmax(dim=-1)  # [batch, pos]
    return torch.where(mask, weights, 0.0)  # exactly 0 on padding, even in a row with no real token


class AdditiveAttention(nn.Module):
    """Bahdanau-style scores s_t = v^T tanh(W h_t + b), then a masked softmax."""

    def __init__(self, d_hidden: int):
        super().__init__()
        self.W = nn.Linear(d_hidden, d_hidden // 2)
        self.v = nn.Linear(d_hidden // 2, 1, bias=False)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        scores = self.v(torch.tanh(self.W(hidden))).squeeze(-1)  # [batch, pos]
        return masked_softmax(scores, mask)  # [batch, pos]


class AttentionClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_embed, padding_idx=0)
        if cfg.encoder == "lstm":
            self.lstm = nn.LSTM(cfg.d_embed, cfg.d_hidden // 2, batch_first=True, bidirectional=True)
        elif cfg.encoder == "average":
            self.project = nn.Linear(cfg.d_embed, cfg.d_hidden)
        else:
            raise ValueError(f"encoder must be 'lstm' or 'average'; got {cfg.encoder!r}")
        if cfg.attention not in ("additive", "uniform"):
            raise ValueError(f"attention must be 'additive' or 'uniform'; got {cfg.attention!r}")
        self.attention = AdditiveAttention(cfg.d_hidden) if cfg.attention == "additive" else None
        self.out = nn.Linear(cfg.d_hidden, 1)

    def encode(self, embeddings: Tensor, mask: Tensor) -> Tensor:
        """Hidden states h [batch, pos, H] from embeddings [batch, pos, d_embed]; padding never leaks in."""
        if self.cfg.encoder == "average":
            return torch.tanh(self.project(embeddings))
        lengths = mask.sum(-1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(embeddings, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = self.lstm(packed)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(hidden, batch_first=True, total_length=embeddings.shape[1])
        return hidden  # [batch, pos, H]

    def weights(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """The model's attention alpha [batch, pos]: learned, or uniform over the real tokens."""
        if self.attention is None:
            return mask.to(hidden.dtype) / mask.sum(-1, keepdim=True)
        return self.attention(hidden, mask)

    def decode(self, hidden: Tensor, alpha: Tensor) -> Tensor:
        """The logit [batch] from hidden states [batch, pos, H] and attention [batch, pos]."""
        return self.out(torch.einsum("bp,bph->bh", alpha, hidden)).squeeze(-1)

    def forward(self, tokens: Tensor, mask: Tensor, *, embeddings: Tensor | None = None,
                alpha: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(logit [batch], alpha [batch, pos]). Pass `embeddings` to differentiate through them, `alpha` to
        replace the model's attention (the hidden states stay the model's own)."""
        embeddings = self.embed(tokens) if embeddings is None else embeddings
        hidden = self.encode(embeddings, mask)
        alpha = self.weights(hidden, mask) if alpha is None else alpha
        return self.decode(hidden, alpha), alpha

    def predict(self, tokens: Tensor, mask: Tensor, alpha: Tensor | None = None) -> Tensor:
        """y_hat = sigmoid(logit) [batch]."""
        return torch.sigmoid(self(tokens, mask, alpha=alpha)[0])


def classifier_folder() -> Path:
    from utils.models import MODELS_DIR
    return MODELS_DIR / FOLDER


def manifest() -> dict[str, dict]:
    """Every shipped classifier by name: its config, seed, variant, test accuracy and training time."""
    return json.loads((classifier_folder() / MANIFEST).read_text())


def classifier_name(variant: str, encoder: str, attention: str, seed: int) -> str:
    return f"{variant}-{encoder}-{attention}-seed{seed}"


def load_classifier(name: str) -> AttentionClassifier:
    """A trained classifier from models/jw-classifiers/, in eval mode (see `manifest()` for the names)."""
    from safetensors.torch import load_file

    entries = manifest()
    if name not in entries:
        raise KeyError(f"no classifier {name!r}; shipped: {', '.join(sorted(entries))}")
    model = AttentionClassifier(ClassifierConfig(**entries[name]["config"]))
    model.load_state_dict(load_file(str(classifier_folder() / f"{name}.safetensors")))
    return model.eval()
