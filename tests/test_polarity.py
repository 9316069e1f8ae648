"""The polarity task's ground truth, and the attention classifiers' masking (notebook 02)."""

import random

import pytest
import torch

from utils import polarity
from utils.attention_classifiers import AttentionClassifier, ClassifierConfig, masked_softmax


def label_from_truth(example: polarity.Example) -> int:
    """Re-derive the label from the decisive words alone, as a reader would."""
    words = [example.words[t] for t in example.decisive_positions]
    cues = [w for w in words if w in polarity.POSITIVE + polarity.NEGATIVE]
    positive = cues[0] in polarity.POSITIVE
    assert all((w in polarity.POSITIVE) == positive for w in cues)
    return int(positive != (polarity.NEGATOR in words))


@pytest.mark.parametrize("variant", polarity.VARIANTS)
def test_the_decisive_tokens_determine_the_label(variant):
    for example in polarity.examples(300, variant, seed=5):
        assert label_from_truth(example) == example.label
        others = [w for t, w in enumerate(example.words) if t not in example.decisive_positions]
        assert not set(others) & set(polarity.POSITIVE + polarity.NEGATIVE + (polarity.NEGATOR,)), example.text


def test_the_variants_differ_as_documented():
    decisive = polarity.examples(300, "decisive", seed=6)
    redundant = polarity.examples(300, "redundant", seed=6)
    assert {len(e.decisive_positions) for e in decisive} == {1, 2}  # a cue, or "not" + cue
    assert all(polarity.REDUNDANT_CUES[0] <= len(e.decisive_positions) <= polarity.REDUNDANT_CUES[1] for e in redundant)
    negated = [e for e in decisive if polarity.NEGATOR in e.words]
    assert 0.4 < len(negated) / len(decisive) < 0.6
    assert all(e.words[e.decisive_positions[0] + 1] in polarity.POSITIVE + polarity.NEGATIVE for e in negated)
    for examples in (decisive, redundant):
        assert 0.4 < sum(e.label for e in examples) / len(examples) < 0.6


def test_examples_are_deterministic_and_the_splits_disjoint():
    assert polarity.examples(50, "decisive", 3) == polarity.examples(50, "decisive", 3)
    train = {e.words for e in polarity.examples(4000, "decisive", polarity.TRAIN_SEED)}
    test = [e.words for e in polarity.examples(200, "decisive", polarity.TEST_SEED)]
    assert sum(words in train for words in test) < 10  # short sentences may recur; whole splits do not


def test_encode_pads_right_and_keeps_the_truth():
    batch = polarity.examples(5, "redundant", seed=1)
    tokens, mask, labels, importance = polarity.encode(batch)
    for row, example in enumerate(batch):
        length = len(example.words)
        assert mask[row, :length].all() and not mask[row, length:].any()
        assert (tokens[row, length:] == 0).all() and importance[row, length:].sum() == 0
        assert importance[row].nonzero().flatten().tolist() == example.decisive_positions
        assert labels[row] == example.label


def test_masked_softmax_gives_padding_exactly_zero():
    scores = torch.tensor([[1e4, -1e4, 3.0], [-5e3, 2.0, 7.0]])
    mask = torch.tensor([[False, True, True], [True, True, False]])
    alpha = masked_softmax(scores, mask)
    assert alpha[~mask].eq(0).all() and torch.allclose(alpha.sum(-1), torch.ones(2))


@pytest.mark.parametrize("encoder", ["lstm", "average"])
@pytest.mark.parametrize("attention", ["additive", "uniform"])
def test_padding_never_changes_a_classifier(encoder, attention):
    """The same sentences, padded to two different lengths, give the same logits and attention."""
    torch.manual_seed(0)
    model = AttentionClassifier(ClassifierConfig(len(polarity.vocabulary()), encoder, attention)).eval()
    tokens, mask, _, _ = polarity.encode(polarity.examples(4, "decisive", seed=2))
    longer, longer_mask = torch.nn.functional.pad(tokens, (0, 5)), torch.nn.functional.pad(mask, (0, 5))
    with torch.no_grad():
        logit, alpha = model(tokens, mask)
        logit_long, alpha_long = model(longer, longer_mask)
    assert torch.allclose(logit, logit_long, atol=1e-6)
    assert torch.allclose(alpha, alpha_long[:, :tokens.shape[1]], atol=1e-6) and alpha_long[:, tokens.shape[1]:].eq(0).all()
    if attention == "uniform":
        assert torch.allclose(alpha, mask / mask.sum(-1, keepdim=True))


def test_the_bilstm_reads_context_and_the_average_encoder_does_not():
    torch.manual_seed(0)
    tokens, mask, _, _ = polarity.encode(polarity.examples(2, "decisive", seed=4))
    changed = tokens.clone()
    changed[:, 0] = polarity.token_ids()[polarity.NEGATOR]
    for encoder, reads_context in (("lstm", True), ("average", False)):
        model = AttentionClassifier(ClassifierConfig(len(polarity.vocabulary()), encoder)).eval()
        with torch.no_grad():
            before = model.encode(model.embed(tokens), mask)[:, 1:]
            after = model.encode(model.embed(changed), mask)[:, 1:]
        assert (not torch.allclose(before, after)) == reads_context, encoder


def test_vocabulary_covers_every_generated_word():
    ids = polarity.token_ids()
    rng = random.Random(9)
    for variant in polarity.VARIANTS:
        for _ in range(500):
            assert all(w in ids for w in polarity.example(rng, variant).words)
    assert ids[polarity.PAD] == 0
