"""Probing course-lm on the corpus's grammatical sentences (notebook 04).

Datasets are split by *sentence*: train and test come from different generator seeds, and a test
sentence identical to a training one is dropped, so no token of a test sentence was seen by a probe.
Each sentence is read at labelled positions:

- every word, for part of speech (its control-task type is the word itself);
- the **read position**, the word just before the verb, where the model predicts the verb: subject
  number is read there (its control-task type is the subject noun, the word that decides the label),
  and so is the animacy of the noun at that position, a property the verb's form does not depend on.

Token positions index the BOS-prefixed tokens: word i sits at position i + 1, so the read position of
a sentence is `verb_index` (the word before the verb).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from utils import corpus
from utils.corpus import ProbeSentence

TRAIN_SEED, TEST_SEED = 400, 401  # generator seeds of the probing splits (other notebooks use other seeds)
ANIMATE_NOUNS = ("dog", "cat", "bird", "girl", "boy", "child", "man", "woman")
ANIMATE = {form for pair in corpus.NOUNS if pair[0] in ANIMATE_NOUNS for form in pair}
VERB_FORMS = {form: pair for pair in corpus.INTRANSITIVE + corpus.TRANSITIVE + [("is", "are")]
              for form in pair}  # either form -> (singular, plural)


@dataclass
class Split:
    """Probing sentences split by sentence; `dropped` counts test sentences that duplicated a training one."""
    train: list[ProbeSentence]
    test: list[ProbeSentence]
    dropped: int


def split_by_sentence(n_train: int, n_test: int) -> Split:
    """Train and test sentences from different generator seeds, with exact duplicates removed from test."""
    train = corpus.probing_sentences(n_train, seed=TRAIN_SEED)
    seen = {tuple(s.words) for s in train}
    drawn = corpus.probing_sentences(n_test, seed=TEST_SEED)
    test = [s for s in drawn if tuple(s.words) not in seen]
    return Split(train, test, len(drawn) - len(test))


def encode(model, sentences: list[ProbeSentence]) -> torch.Tensor:
    """Token ids [batch, pos]: BOS, one token per word, right-padded (padding sits after every real token,
    so a causal model's activations at real positions do not depend on it)."""
    rows = [model.to_tokens(" ".join(s.words))[0] for s in sentences]
    misaligned = [s for s, row in zip(sentences, rows) if len(row) != len(s.words) + 1]
    if misaligned:
        raise ValueError(f"{len(misaligned)} sentences do not tokenize one token per word (e.g. "
                         f"{' '.join(misaligned[0].words)!r}); positions would not match the labels")
    pad = getattr(model.tokenizer, "pad_token_id", None) or 0
    tokens = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    return tokens


# ---------------------------------------------------------------- labelled positions
@dataclass
class Labelled:
    """Positions to read and their labels: `rows`, `positions` [n] index a [batch, pos] token grid;
    `labels` [n] the task's labels; `types` [n] the word type whose control label stands in for each."""
    rows: np.ndarray
    positions: np.ndarray
    labels: np.ndarray
    types: list[str]


def part_of_speech(sentences: list[ProbeSentence]) -> Labelled:
    """Every word, labelled with its tag; the control type is the word itself."""
    rows, positions, labels, types = [], [], [], []
    for row, s in enumerate(sentences):
        for i, (word, tag) in enumerate(zip(s.words, s.pos)):
            rows.append(row), positions.append(i + 1), labels.append(tag), types.append(word)
    return Labelled(np.array(rows), np.array(positions), np.array(labels), types)


def subject_number(sentences: list[ProbeSentence]) -> Labelled:
    """The read position (the word before the verb), labelled 0 singular / 1 plural subject; the control type
    is the subject noun."""
    return Labelled(np.arange(len(sentences)), np.array([s.verb_index for s in sentences]),
                    np.array([s.subject_number for s in sentences]), [s.words[s.subject_index] for s in sentences])


def animacy(sentences: list[ProbeSentence]) -> Labelled:
    """The read position, labelled 1 if the noun there is animate (dog, girl, ...); the control type is that noun."""
    nouns = [s.words[s.verb_index - 1] for s in sentences]
    return Labelled(np.arange(len(sentences)), np.array([s.verb_index for s in sentences]),
                    np.array([int(noun in ANIMATE) for noun in nouns]), nouns)


def attractors(sentences: list[ProbeSentence]) -> np.ndarray:
    """True where the noun at the read position has the other number than the subject ("the key to the cabinets")."""
    return np.array([s.number[s.verb_index - 1] not in (-1, s.subject_number) for s in sentences])


def features(resid: torch.Tensor, labelled: Labelled) -> np.ndarray:
    """Residual vectors at the labelled positions: resid [layer, batch, pos, d_model] -> [layer, n, d_model]."""
    return resid[:, labelled.rows, labelled.positions].numpy()


# ---------------------------------------------------------------- the agreement metric
def verb_tokens(model, sentences: list[ProbeSentence]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of each sentence's verb in its singular and plural form: ([batch], [batch])."""
    def token(word: str) -> int:
        return int(model.to_tokens(" " + word, prepend_bos=False)[0, 0])

    pairs = [VERB_FORMS[s.words[s.verb_index]] for s in sentences]
    return torch.tensor([token(sg) for sg, _ in pairs]), torch.tensor([token(pl) for _, pl in pairs])


def agreement_margin(logits: torch.Tensor, sentences: list[ProbeSentence], singular: torch.Tensor,
                     plural: torch.Tensor) -> torch.Tensor:
    """logit(correct form) - logit(other form) of the verb, at each sentence's read position: [batch].

    logits [batch, pos, vocab]; positive means the model prefers the form that agrees with the subject.
    """
    rows = torch.arange(len(sentences))
    read = torch.tensor([s.verb_index for s in sentences])
    plural_minus_singular = logits[rows, read, plural] - logits[rows, read, singular]  # [batch]
    sign = torch.tensor([1.0 if s.subject_number == 1 else -1.0 for s in sentences], dtype=logits.dtype)
    return sign * plural_minus_singular


# ---------------------------------------------------------------- baselines and interventions
def randomly_initialised(model, seed: int = 0):
    """A copy of `model` with every weight redrawn as at initialisation (GPT-2's: N(0, 0.02) matrices,
    LayerNorm weights 1, biases 0): the same architecture that learned nothing."""
    fresh = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in fresh.named_parameters():
            if parameter.ndim > 1:
                parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
            elif name.endswith("weight") and ".ln" in name:
                parameter.fill_(1.0)
            else:
                parameter.zero_()
    return fresh


def residual_hook_name(model, layer: int) -> str:
    """The hook holding residual-stream layer `layer`: resid_pre of block `layer`, or for layer n_layers,
    the last block's resid_post."""
    n_layers = model.cfg.n_layers
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer must be between 0 and {n_layers}; got {layer}")
    return f"blocks.{layer}.hook_resid_pre" if layer < n_layers else f"blocks.{n_layers - 1}.hook_resid_post"


def project_at(model, tokens: torch.Tensor, layer: int, rows: torch.Tensor, positions: torch.Tensor,
               projection: torch.Tensor) -> torch.Tensor:
    """Logits [batch, pos, vocab] with residual layer `layer` replaced by x @ projection at (rows, positions)."""
    def hook(resid: torch.Tensor, hook) -> torch.Tensor:  # [batch, pos, d_model]
        resid = resid.clone()
        resid[rows, positions] = resid[rows, positions] @ projection.to(resid.dtype)
        return resid

    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(residual_hook_name(model, layer), hook)])


def random_projection(d_model: int, rank: int, seed: int) -> torch.Tensor:
    """I - Q Q^T for Q an orthonormal basis of `rank` random directions: [d_model, d_model] (Elazar's control)."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d_model, rank, generator=generator, dtype=torch.float64))  # [d_model, rank]
    return torch.eye(d_model, dtype=torch.float64) - q @ q.T
