"""utils.backcopy: backcopy-lm's language obeys its rules, never repeats a word outside the copies, and marks the
queries where a copy is due."""

import random

import torch

from utils import backcopy


def _sequences(n: int = 200, length: int = 63) -> list[list[str]]:
    rng = random.Random(7)
    return [backcopy.sequence(rng, length) for _ in range(n)]


def test_the_word_after_a_triggers_next_word_is_the_copy():
    copies = 0
    for words in _sequences():
        for i, word in enumerate(words[:-2]):
            if word == "again" and i >= 1:
                assert words[i + 2] == words[i - 1], words
                copies += 1
            elif word == "first":
                assert words[i + 2] == words[0], words
                copies += 1
    assert copies > 200  # about 3 triggers per context of 63 words


def test_no_word_comes_again_except_as_a_copy():
    for words in _sequences():
        copied = {i + 2 for i, word in enumerate(words[:-2]) if word in backcopy.TRIGGERS}
        seen = set()
        for i, word in enumerate(words):
            if word in backcopy.TRIGGERS or i in copied:
                continue
            assert word not in seen, (i, word, words)
            seen.add(word)


def test_copy_positions_mark_the_queries_that_predict_a_copy():
    tokens = backcopy.full_length_contexts(8)  # [8, 64]: BOS + 63 words
    marked = backcopy.copy_positions(tokens)
    ids = {i: w for w, i in backcopy.token_ids().items()}
    for row, flags in zip(tokens.tolist(), marked.tolist()):
        words = [ids[i] for i in row]
        expected = [q >= 1 and words[q - 1] in backcopy.TRIGGERS for q in range(len(words))]
        assert flags == expected
    assert 0.02 < marked.float().mean() < 0.1


def test_held_out_contexts_are_not_a_training_stream():
    from utils.zoo.train_lm import BACKCOPY_LM_CONFIG, world_batches

    held_out = backcopy.full_length_contexts(32)
    training = next(world_batches(backcopy, BACKCOPY_LM_CONFIG))  # [batch, 64], the recipe's first batch
    assert held_out[:, 0].eq(backcopy.token_ids()[backcopy.BOS]).all() and held_out.shape == (32, 64)
    assert not any(torch.equal(a, b) for a in held_out for b in training)
