"""A polarity-classification task whose generator knows which tokens decide each label (notebook 02).

Jain & Wallace (2019) compared attention with other explanations on SST, where nobody knows which words
truly decide a label. Here the distractor text is the course corpus's grammatical sentences ("the keys to
the cabinet are old ."), and polarity cue words are inserted into it, so every example carries its
ground truth: `importance[t]` is 1 at the positions that decide the label and 0 elsewhere.

Two variants of the same generator:

- decisive:  one cue word ("good" ... / "bad" ...) decides the label; half the time an earlier "not"
             (right before it) flips it, and then "not" decides too: "the cat sleeps . not good the keys are old ."
- redundant: three to five cue words of the same polarity and no negation: any one of them gives the
             label, so many attention distributions give the same prediction.

Words are lower-case and space-separated; `PAD` is token 0. Seeds: `examples(n, variant, seed)` is
deterministic; the zoo trains on seeds TRAIN_SEED / DEV_SEED and notebooks test on TEST_SEED.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

import torch

from utils.corpus import grammar_sentence

PAD = "<|pad|>"
POSITIVE = ("good", "great", "nice", "lovely", "fine")
NEGATIVE = ("bad", "awful", "poor", "sad", "terrible")
NEGATOR = "not"
VARIANTS = ("decisive", "redundant")
TRAIN_SEED, DEV_SEED, TEST_SEED = 0, 1, 2
MIN_DISTRACTOR, MAX_DISTRACTOR = 10, 24  # words of grammatical text around the cues
REDUNDANT_CUES = (3, 5)  # inclusive range of cue words in a redundant example


@dataclass(frozen=True)
class Example:
    """One labelled sequence: `label` 1 = positive; `importance[t]` 1.0 where token t decides the label."""
    words: tuple[str, ...]
    label: int
    importance: tuple[float, ...]
    variant: str

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def decisive_positions(self) -> list[int]:
        return [t for t, w in enumerate(self.importance) if w > 0]


def _distractor(rng: random.Random) -> list[str]:
    """Grammatical course sentences, between MIN_DISTRACTOR and MAX_DISTRACTOR words in all."""
    words: list[str] = []
    while len(words) < MIN_DISTRACTOR:
        sentence = grammar_sentence(rng).words
        if len(words) + len(sentence) > MAX_DISTRACTOR:
            continue
        words += sentence
    return words


def _insert(rng: random.Random, words: list[str], phrases: list[list[str]]) -> tuple[list[str], list[int]]:
    """Insert each phrase at a random word boundary of `words`; returns the words and each phrase's start."""
    slots = sorted(rng.choices(range(len(words) + 1), k=len(phrases)))
    out, starts, previous = [], [], 0
    for slot, phrase in zip(slots, phrases):
        out += words[previous:slot]
        starts.append(len(out))
        out += phrase
        previous = slot
    return out + words[previous:], starts


def example(rng: random.Random, variant: str) -> Example:
    """One example of `variant` ("decisive" or "redundant"), drawn with `rng`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    positive = rng.random() < 0.5
    if variant == "decisive":
        negated = rng.random() < 0.5
        cue = rng.choice(POSITIVE if positive != negated else NEGATIVE)  # "not bad" is positive
        phrase = [NEGATOR, cue] if negated else [cue]
        words, (start,) = _insert(rng, _distractor(rng), [phrase])
        decisive = set(range(start, start + len(phrase)))
    else:
        cues = [[rng.choice(POSITIVE if positive else NEGATIVE)] for _ in range(rng.randint(*REDUNDANT_CUES))]
        words, starts = _insert(rng, _distractor(rng), cues)
        decisive = set(starts)
    importance = tuple(1.0 if t in decisive else 0.0 for t in range(len(words)))
    return Example(tuple(words), int(positive), importance, variant)


def examples(n: int, variant: str, seed: int) -> list[Example]:
    """n examples of `variant`, deterministic in `seed` (independent streams per variant)."""
    rng = random.Random(f"{variant}-{seed}")
    return [example(rng, variant) for _ in range(n)]


@cache
def vocabulary() -> list[str]:
    """Every word the generator emits, PAD first (id 0)."""
    rng, words = random.Random(0), set()
    for _ in range(2000):  # the grammar's words, as the generator draws them
        words |= set(grammar_sentence(rng).words)
    return [PAD] + sorted(words | set(POSITIVE) | set(NEGATIVE) | {NEGATOR})


@cache
def token_ids() -> dict[str, int]:
    return {w: i for i, w in enumerate(vocabulary())}


def encode(batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded tensors: tokens [batch, pos] (long), mask [batch, pos] (bool, True on real tokens),
    labels [batch] (float), importance [batch, pos] (float, 0 on padding)."""
    ids, length = token_ids(), max(len(e.words) for e in batch)
    tokens = torch.zeros(len(batch), length, dtype=torch.long)
    importance = torch.zeros(len(batch), length)
    for b, e in enumerate(batch):
        tokens[b, :len(e.words)] = torch.tensor([ids[w] for w in e.words])
        importance[b, :len(e.words)] = torch.tensor(e.importance)
    mask = tokens != ids[PAD]
    return tokens, mask, torch.tensor([float(e.label) for e in batch]), importance
