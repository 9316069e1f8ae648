"""utils.facts: a world where no single token identifies a person, and splits that training never sees."""

import random
from collections import Counter

import pytest

from utils import corpus, facts


def test_every_name_part_is_shared_by_twelve_people_and_every_pair_is_one_person():
    people = facts.people()
    assert len(people) == facts.N_PARTS * facts.PER_PART
    assert len({p.words for p in people}) == len(people)  # the pair identifies the person
    assert set(Counter(p.words[0] for p in people).values()) == {facts.PER_PART}
    assert set(Counter(p.words[1] for p in people).values()) == {facts.PER_PART}
    assert not set(facts.FIRST_PARTS) & set(facts.LAST_PARTS)


def test_attributes_are_fixed_by_the_world_and_vary_within_a_name_part():
    people = facts.people()
    assert people == facts.people.__wrapped__()  # rebuilt from WORLD_SEED: the same world
    for part in facts.FIRST_PARTS[:3]:
        sharing = [p for p in people if p.words[0] == part]
        assert len({p.attributes["country"] for p in sharing}) > 3  # the first part alone does not give the answer


def _training_text(n_docs: int = 3000) -> str:
    rng = random.Random(5)
    return "\n".join(" ".join(facts.document(rng)) for _ in range(n_docs))


def test_held_out_phrasings_and_clauses_never_appear_in_training_documents():
    text = _training_text()
    for phrases in facts.HELD_OUT_PHRASES.values():
        assert all(phrase not in text for phrase in phrases)
    assert all(clause not in text for clause in facts.HELD_OUT_CLAUSES)
    assert ", , " not in text
    trained_words = {w for phrases in facts.TRAIN_PHRASES.values() for phrase in phrases for w in phrase.split()}
    for phrases in facts.HELD_OUT_PHRASES.values():  # new orders of known words: a miss is not an unknown word
        assert all(set(phrase.split()) <= trained_words for phrase in phrases)
    two = [p.text for p in facts.prompts(200, "two clauses", seed=3)]
    assert all(t.count(",") == 3 for t in two)  # ", clause , clause ," after the name


@pytest.mark.parametrize("split", facts.SPLITS)
def test_prompts_put_the_subject_at_tokens_one_and_two_and_encode_offline(split):
    ids = facts.token_ids()
    for prompt in facts.prompts(50, split, seed=1):
        words = prompt.text.split()
        first, last = prompt.subject.split()
        assert prompt.str_tokens == [corpus.BOS] + words and prompt.str_tokens[1:3] == [first, last]
        assert prompt.subject_span == (1, 3)
        assert all(w in ids for w in words) and prompt.answer in ids


def test_a_context_is_bos_then_documents_cut_at_n_ctx_or_bos_and_a_repeated_half():
    rng = random.Random(0)
    for _ in range(100):
        words = facts.context(rng, 64)
        assert words[0] == corpus.BOS and len(facts.encode(words, 64)) == 64
        half = (64 - 1) // 2
        assert len(words) == 64 or (len(words) == 1 + 2 * half and words[1:1 + half] == words[1 + half:])


def test_a_registry_lists_the_three_attributes_in_every_order():
    rng = random.Random(2)
    by_name = {p.words: p for p in facts.people()}
    firsts = Counter()
    for _ in range(600):
        words = facts.document(rng, {"registry": 1.0})
        person = by_name[tuple(words[2:4])]
        assert words[:2] == ["records", ","] and words[-1] == "."
        assert sorted(words[4:7]) == sorted(person.attributes.values())
        firsts[next(r for r, v in person.attributes.items() if v == words[4])] += 1
    assert set(firsts) == set(corpus.RELATIONS) and min(firsts.values()) > 150  # each relation first, about a third


def test_a_swapped_subject_keeps_every_other_token_and_changes_the_answer():
    for i, prompt in enumerate(facts.prompts(40, "held-out clauses", seed=4)):
        swapped = facts.swapped_subject(prompt, seed=i)
        assert swapped.text.split()[2:] == prompt.text.split()[2:] and swapped.subject != prompt.subject
        assert swapped.answer != prompt.answer and len(swapped.str_tokens) == len(prompt.str_tokens)
        person = next(p for p in facts.people() if p.name == swapped.subject)
        assert person.attributes[prompt.relation] == swapped.answer
