"""IOI from composable parts: held-out structures and names really are held out, prompts are what they say."""

import random

import pytest
import torch

from utils import ioi


def test_held_out_families_are_unseen_combinations_of_seen_parts():
    assert len(ioi.FAMILIES) == len(ioi.INTROS) * len(ioi.MIDDLES) * len(ioi.ACTIONS)
    assert set(ioi.TRAIN_FAMILIES).isdisjoint(ioi.HELD_OUT_FAMILIES)
    assert set(ioi.TRAIN_FAMILIES) | set(ioi.HELD_OUT_FAMILIES) == set(ioi.FAMILIES)
    for part in range(3):  # every intro, middle and action occurs in training
        assert {f[part] for f in ioi.TRAIN_FAMILIES} == {f[part] for f in ioi.FAMILIES}
    assert not set(ioi.TRAIN_NAMES) & set(ioi.HELD_OUT_NAMES) and len(set(ioi.NAMES)) == len(ioi.NAMES) == 196


def test_training_documents_never_use_held_out_families_or_names_in_ioi():
    rng = random.Random(0)
    held_out_templates = {ioi.template(f) for f in ioi.HELD_OUT_FAMILIES}
    seen_names = set()
    for _ in range(3000):
        doc = ioi.document(rng, {"ioi": 1.0})
        assert not set(doc) & set(ioi.HELD_OUT_NAMES)
        seen_names |= set(doc) & set(ioi.NAMES)
        # the structure, read back: names, places, objects and verbs replaced by their slots
        assert not any(_matches(doc[:-2], t) for t in held_out_templates), " ".join(doc)
    assert seen_names == set(ioi.TRAIN_NAMES)
    stories = [ioi.document(rng, {"story": 1.0}) for _ in range(2000)]
    assert set(ioi.HELD_OUT_NAMES) <= {w for doc in stories for w in doc}  # known as names, from other sentences


def test_a_share_of_training_ioi_sentences_use_other_words_as_names():
    """WORD_NAME_SHARE of IOI sentences put two non-name words in the name slots; the answer is still the word
    that is not repeated, and no such word is a name or a word the sentences are built from."""
    rng, with_words = random.Random(1), 0
    words = set(ioi.word_names())
    assert words and not words & set(ioi.NAMES) and not words & ({"the", "to", "and", ",", "."} | set(ioi.PLACES))
    for _ in range(2000):
        doc = ioi.document(rng, {"ioi": 1.0})
        slots = [w for w in doc[:-2] if w in words]
        if slots:
            with_words += 1
            assert len(set(slots)) == 2 and doc[-2] in slots and slots.count(doc[-2]) == 1, " ".join(doc)
    assert abs(with_words / 2000 - ioi.WORD_NAME_SHARE) < 0.03


def _matches(words: list[str], template: str) -> bool:
    slots = template.split()
    if len(slots) != len(words):
        return False
    return all(s.startswith("{") or s == w for s, w in zip(slots, words))


@pytest.mark.parametrize("split", list(ioi.SPLITS))
def test_prompts_mark_io_and_s_and_their_abc_counterfactual(split):
    families, names = ioi.SPLITS[split]
    batch = ioi.prompts(60, split, seed=4)
    assert {p.family for p in batch} <= set(families) and len({p.family for p in batch}) == min(60, len(families))
    orders = set()
    for p in batch:
        tokens = ["BOS"] + p.text.split()
        assert tokens[p.io_pos] == p.io and tokens[p.s1_pos] == tokens[p.s2_pos] == p.s and p.s1_pos < p.s2_pos
        assert {p.io, p.s, p.abc_name} <= set(names) and len({p.io, p.s, p.abc_name}) == 3
        assert p.text.split().count(p.io) == 1 and p.text.split().count(p.s) >= 2
        abc = ["BOS"] + p.abc_text.split()
        assert abc[p.s1_pos] == p.s and p.s not in abc[p.s1_pos + 1:] and abc[p.s2_pos] == p.abc_name
        orders.add(p.io_pos < p.s1_pos)
    assert orders == {True, False}  # ABBA and BABA


def test_prompts_are_deterministic_and_the_vocabulary_covers_the_language():
    assert ioi.prompts(10, "held-out both", seed=1) == ioi.prompts(10, "held-out both", seed=1)
    known = set(ioi.vocabulary())
    rng = random.Random(3)
    for _ in range(200):
        assert set(ioi.context(rng, 64)[1:]) <= known
    assert ioi.token_ids()[ioi.BOS] == 0 and ioi.token_ids()[ioi.PAD] == 1
    assert ioi.full_length_contexts(3).shape == (3, 64)


def test_full_length_documents_know_where_documents_end_and_full_stops_do_not():
    rows, ends = ioi.full_length_documents(32, 64, seed=10_000)
    assert torch.equal(rows, ioi.full_length_contexts(32, 64, seed=10_000))
    stop = rows == ioi.token_ids()["."]
    assert not (ends & ~stop).any() and (stop & ~ends).sum() > 20  # many full stops sit inside a document
    rng = random.Random(5)
    for _ in range(50):  # the parts join into the context, and a filled context is exactly n_ctx long
        state = rng.getstate()
        parts = ioi.context_documents(rng, 64, p_random=0.0, fill=True)
        rng.setstate(state)
        assert [w for part in parts for w in part] == ioi.context(rng, 64, p_random=0.0, fill=True)
        assert sum(map(len, parts)) == 64 and parts[0] == [ioi.BOS]
