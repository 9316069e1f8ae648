"""A language in which heads have a job only now and then: the data of `backcopy-lm` (notebook 01's sinks).

Guo et al. (2024, "Active-dormant attention heads", arXiv 2410.13835) trained small transformers on a bigram
chain in which a few trigger tokens ask for the token before them to be copied ("Bigram-Backcopy"): the head
that copies is *active* after a trigger and *dormant* everywhere else, where it parks its attention on the
first token, whose value it has shrunk: an attention sink. Here the copy acts one word late, so that layer 0
must first note that the previous word was a trigger and heads beyond it do the copying:

    ... tree books again cat tree ...     after "again" and one more word: the word before "again"
    adam ... first green adam ...         after "first" and one more word: the context's first word

Every other word follows a fixed bigram chain over ordinary course words (6 possible successors each, with
unequal weights), *without repeats*: a word already in the context is not drawn again (outside the copies), so a
head that averages the context is no use as a cache (in a chain with repeats, copying heads attended evenly
where they had no job instead of resting: utils/zoo/train_lm.py records both). A context is BOS then 63 words
(`context`); held-out contexts come from other seeds than any training stream (`full_length_contexts`), and
`copy_positions` marks the queries whose next word is a copy, where the copying heads have their job.
"""

from __future__ import annotations

import random
from functools import cache

import torch

from utils import corpus

BOS, PAD, UNK = corpus.BOS, corpus.PAD, corpus.UNK
TRIGGERS = ("again", "first")
WORDS = sorted(({w for pair in corpus.NOUNS + corpus.INTRANSITIVE + corpus.TRANSITIVE for w in pair}
                | set(corpus.ADJECTIVES) | set(corpus.PREPOSITIONS) | set(corpus.ADVERBS) | set(corpus.NAMES[:20])
                | {"the", "a", "is", "are", "and", "then", "it", "was"}) - set(TRIGGERS))
P_TRIGGER = 0.06  # chance that the next word is a trigger (not right after another trigger or its next word)
CHAIN_SEED, SUCCESSORS = 2024, 6


@cache
def chain() -> dict[str, tuple[list[str], list[float]]]:
    """Word -> (its possible successors, their weights): the bigram chain, fixed by CHAIN_SEED."""
    rng, out = random.Random(CHAIN_SEED), {}
    for word in WORDS + list(TRIGGERS):
        successors = rng.sample(WORDS, SUCCESSORS)
        out[word] = (successors, [rng.random() ** 2 + 0.05 for _ in successors])
    return out


def vocabulary() -> list[str]:
    return sorted(WORDS + list(TRIGGERS))


@cache
def token_ids() -> dict[str, int]:
    """backcopy-lm's tokenizer vocabulary: specials first (BOS 0, PAD 1, UNK 2), then `vocabulary()`."""
    return {w: i for i, w in enumerate(corpus.SPECIAL_TOKENS + vocabulary())}


def sequence(rng: random.Random, n: int, p_trigger: float = P_TRIGGER) -> list[str]:
    """n words of the language (no BOS)."""
    words = [rng.choice(WORDS)]
    used = {words[0]}
    while len(words) < n:
        if len(words) >= 3 and words[-2] == "again":
            words.append(words[-3])  # the word before "again"
        elif len(words) >= 2 and words[-2] == "first":
            words.append(words[0])  # the context's first word
        elif len(words) >= 2 and rng.random() < p_trigger and not set(words[-2:]) & set(TRIGGERS):
            words.append(rng.choice(TRIGGERS))
        else:
            successors, weights = chain()[words[-1]]
            fresh = [(word, weight) for word, weight in zip(successors, weights) if word not in used]
            word = (rng.choices([w for w, _ in fresh], [x for _, x in fresh])[0] if fresh
                    else rng.choice([w for w in WORDS if w not in used]))
            used.add(word)
            words.append(word)
    return words[:n]


def context(rng: random.Random, n_ctx: int, weights: dict[str, float] | None = None, p_random: float = 0.0) -> list[str]:
    """One training context: BOS then n_ctx - 1 words (the world interface of utils.zoo.train_lm)."""
    return [BOS] + sequence(rng, n_ctx - 1)


def encode(words: list[str], n_ctx: int | None = None) -> list[int]:
    ids = token_ids()
    row = [ids[w] for w in words]
    return row + [ids[PAD]] * ((n_ctx or len(row)) - len(row))


def full_length_contexts(n: int, n_ctx: int = 64, seed: int = 10_000) -> torch.Tensor:
    """n held-out contexts, BOS + n_ctx - 1 words: token ids [n, n_ctx] (string seeds: never a training stream)."""
    rng = random.Random(f"held-out-{seed}")
    return torch.tensor([encode(context(rng, n_ctx)) for _ in range(n)])


def random_word_contexts(n: int, n_ctx: int = 64, seed: int = 0) -> torch.Tensor:
    """BOS then uniform random words of the whole vocabulary (triggers included, rules ignored): [n, n_ctx]."""
    rng, words = random.Random(seed), vocabulary()
    return torch.tensor([encode([BOS] + corpus.random_words(rng, n_ctx - 1, words)) for _ in range(n)])


def copy_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Queries whose next word is a copy (the word before them is a trigger): [batch, pos] bool."""
    ids = token_ids()
    previous = torch.cat([torch.full_like(tokens[:, :1], ids[BOS]), tokens[:, :-1]], dim=1)  # [batch, pos]
    return (previous == ids["again"]) | (previous == ids["first"])
