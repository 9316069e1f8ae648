"""utils.facts: a world where no single token identifies a person, and splits that training never sees."""

import random
from collections import Counter

import pytest

from utils import corpus, facts


def test_every_clan_and_given_name_pair_is_one_person_and_no_token_identifies_anyone():
    people = facts.people()
    assert len(people) == facts.N_CLANS * facts.N_GIVEN == 288
    assert len({p.words for p in people}) == len(people)  # the pair identifies the person
    assert set(Counter(p.words[0] for p in people).values()) == {facts.N_GIVEN}  # a clan: 72 people
    assert set(Counter(p.words[1] for p in people).values()) == {facts.N_CLANS}  # a given name: 4 people
    assert not set(facts.CLANS) & set(facts.GIVEN_NAMES)
    assert not (set(facts.CLANS) | set(facts.GIVEN_NAMES)) & set(corpus.NAMES)


def test_attributes_are_fixed_by_the_world_and_neither_name_token_gives_them():
    people = facts.people()
    assert people == facts.people.__wrapped__()  # rebuilt from WORLD_SEED: the same world
    for clan in facts.CLANS:
        assert len({p.attributes["country"] for p in people if p.words[0] == clan}) > 10
    ambiguous = [len({p.attributes["country"] for p in people if p.words[1] == given}) > 1
                 for given in facts.GIVEN_NAMES]
    assert sum(ambiguous) >= 0.9 * len(ambiguous)  # a given name alone rarely fixes the country (4 people each)


def test_language_is_a_function_of_country_and_uses_every_language():
    people = facts.people()
    assert all(p.attributes["language"] == facts.LANGUAGE_OF[p.attributes["country"]] for p in people)
    assert set(facts.LANGUAGE_OF) == set(corpus.RELATIONS["country"])
    assert {p.attributes["language"] for p in people} == set(corpus.RELATIONS["language"])


def test_most_training_fact_sentences_name_another_person_between_subject_and_relation():
    rng = random.Random(6)
    names = {" ".join(p.words) for p in facts.people()}
    sentences = [" ".join(facts.document(rng, {"fact": 1.0})) for _ in range(4000)]
    naming = [any(name in s.split(" , ")[1] for name in names) if " , " in s else False for s in sentences]
    with_clause = [" , " in s for s in sentences]
    assert abs(sum(with_clause) / 4000 - facts.P_CLAUSE) < 0.03
    assert abs(sum(naming) / 4000 - facts.P_CLAUSE * facts.P_NAMING) < 0.03  # 0.6
    evaluated = [" , " in p.text for p in facts.prompts(2000, "train phrasings", seed=6)]
    assert abs(sum(evaluated) / 2000 - 0.5) < 0.04  # evaluation keeps the plain mixture: a clause in half


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


def test_context_documents_join_into_the_context():
    rng = random.Random(1)
    for _ in range(100):
        state = rng.getstate()
        parts = facts.context_documents(rng, 64)
        rng.setstate(state)
        assert [w for part in parts for w in part] == facts.context(rng, 64)
        assert all(part[-1] == "." for part in parts[1:-1])  # whole documents end on their full stop


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
