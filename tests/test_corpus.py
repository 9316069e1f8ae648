"""The synthetic corpus, its prompt sets and the word-level tokenizer."""

from collections import Counter

import pytest
import torch

from utils import corpus as C
from utils.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer


def _flat(context: list[C.Document]) -> list[str]:
    return [w for doc in context for w in doc.words]


def test_stream_is_deterministic_and_seeded():
    first = [_flat(c) for c, _ in zip(C.training_stream(3), range(50))]
    again = [_flat(c) for c, _ in zip(C.training_stream(3), range(50))]
    other = [_flat(c) for c, _ in zip(C.training_stream(4), range(50))]
    assert first == again and first != other


def test_contexts_start_with_bos_fit_and_mix_all_kinds():
    kinds = Counter()
    for context, _ in zip(C.training_stream(0, n_ctx=64), range(300)):
        words = _flat(context)
        assert words[0] == C.BOS and C.BOS not in words[1:] and len(words) <= 64
        kinds.update(doc.kind for doc in context)
    assert {"fact", "ioi", "grammar", "repeat", "random"} <= set(kinds)  # registry is off by default


def test_repeat_documents_repeat_a_span():
    rng, people, vocab = __import__("random").Random(0), C.subjects(), C.vocabulary()
    doc = C.sample_document(rng, people, vocab, {"repeat": 1.0})
    words = doc.words[:-1]
    assert any(words[:k] == words[-k:] for k in range(3, 13))


def test_registry_documents_list_attributes_after_the_name():
    rng = __import__("random").Random(0)
    doc = C.sample_document(rng, C.subjects(), C.vocabulary(), {"registry": 1.0})
    person = next(p for p in C.subjects() if list(p.words) == doc.words[2:2 + len(p.words)])
    assert doc.words[2 + len(person.words):-1] == [person.attributes[r] for r in C.RELATIONS]


def test_lookup_documents_answer_with_the_code_of_the_subjects_attribute():
    rng = __import__("random").Random(0)
    for _ in range(50):
        doc = C.sample_document(rng, C.subjects(), C.vocabulary(), {"lookup": 1.0})
        end = doc.words.index(".")  # "records , value code , value code ... ."
        table = dict(zip(doc.words[2:end:3], doc.words[3:end:3]))
        assert doc.words[0] == "records" and len(table) == 4 and set(table.values()) <= set(C.NAMES)
        person = next(p for p in C.subjects() if list(p.words) == doc.words[end + 1:end + 1 + len(p.words)])
        relation = next(r for r, values in C.RELATIONS.items() if set(table) <= set(values))
        assert doc.words[-2] == table[person.attributes[relation]] and doc.words[-1] == "."


def test_lookup_prompts_span_the_subject_and_answer_with_its_code():
    prompts = C.lookup_prompts(30, seed=0)
    assert prompts == C.lookup_prompts(30, seed=0)
    for p in prompts:
        b, e = p.subject_span
        assert " ".join(p.str_tokens[b:e]) == p.subject and p.answer in C.NAMES
        i = p.str_tokens.index(p.answer)  # the answer is a code in the table: right after the attribute
        person = next(s for s in C.subjects() if s.name == p.subject)
        assert p.str_tokens[i - 1] == person.attributes[p.relation]


def test_grammar_documents_carry_labels():
    rng = __import__("random").Random(0)
    doc = C.sample_document(rng, C.subjects(), C.vocabulary(), {"grammar": 1.0})
    assert len(doc.labels["pos"]) == len(doc.labels["number"]) == len(doc.words)


def test_ioi_prompts_answers_and_counterfactuals():
    prompts = C.ioi_prompts(120, seed=0)
    assert prompts == C.ioi_prompts(120, seed=0)
    assert len(C.IOI_TEMPLATES) >= 10 and len(set(C.NAMES)) >= 60
    assert {p.template for p in prompts} == set(range(len(C.IOI_TEMPLATES)))
    for p in prompts:
        words, abc = [C.BOS] + p.text.split(), [C.BOS] + p.abc_text.split()
        assert words.count(p.io) == 1 and words.count(p.s) == 2 and p.io != p.s
        assert words[p.io_pos] == p.io and words[p.s1_pos] == words[p.s2_pos] == p.s and p.s2_pos > p.s1_pos
        assert p.abc_name not in (p.io, p.s) and abc[p.s2_pos] == p.abc_name
        assert [i for i, (a, b) in enumerate(zip(words, abc)) if a != b] == [p.s2_pos]


def test_subjects_share_first_tokens_and_own_their_last():
    people = C.subjects()
    assert len(people) >= 300 and len({p.words for p in people}) == len(people)
    assert {len(p.words) for p in people} == {2, 3}
    assert min(Counter(p.words[0] for p in people).values()) >= 10
    assert len({p.words[-1] for p in people}) == len(people)
    others = set(C.NAMES) | set(C.FIRST_PARTS) | set(C.MIDDLE_PARTS) | set(sum(C.RELATIONS.values(), []))
    assert not others & set(C.LAST_PARTS)
    assert all(set(p.attributes) == set(C.RELATIONS) for p in people) and len(C.RELATIONS) >= 3


@pytest.mark.parametrize("held_out", [False, True])
def test_fact_prompts_spans_and_answers(held_out):
    prompts = C.fact_prompts(None, seed=0, held_out=held_out)
    assert len(prompts) == 3 * len(C.subjects()) and prompts[:20] == C.fact_prompts(20, seed=0, held_out=held_out)
    by_name = {p.name: p for p in C.subjects()}
    for f in prompts:
        b, e = f.subject_span
        assert f.str_tokens[0] == C.BOS and f.str_tokens[1:] == f.text.split()
        assert " ".join(f.str_tokens[b:e]) == f.subject and b == 1
        assert f.answer == by_name[f.subject].attributes[f.relation]
        assert f.answer not in f.str_tokens
    clauses = C.HELD_OUT_CLAUSES if held_out else C.CLAUSES
    assert any(c in f.text for f in prompts for c in clauses)


def test_some_fact_prompts_name_another_person_between_subject_and_relation():
    names = {p.name for p in C.subjects()}
    with_other = 0
    for f in C.fact_prompts(None, seed=0):
        clause = f.text.split(" , ")[1] if " , " in f.text else ""
        others = [n for n in names if f" {n} " in f" {clause} "]
        assert f.subject not in others
        with_other += bool(others)
    assert 0.1 < with_other / (3 * len(names)) < 0.3  # 3 of 9 clauses, in half of the prompts


def test_probing_sentences_labels():
    sentences = C.probing_sentences(300, seed=1)
    assert sentences == C.probing_sentences(300, seed=1)
    assert any(s.number[i] == 1 - s.subject_number for s in sentences for i in range(s.subject_index + 1, s.verb_index))
    for s in sentences:
        assert len(s.words) == len(s.pos) == len(s.number) and set(s.pos) <= set(C.POS_TAGS)
        assert s.pos[s.subject_index] == "NOUN" and s.number[s.subject_index] == s.subject_number
        assert s.pos[s.verb_index] in ("AUX", "VERB") and s.number[s.verb_index] == s.subject_number


def test_repeated_random_tokens():
    toks = C.repeated_random_tokens(4, 20, seed=0)
    assert toks.shape == (4, 41) and (toks[:, 0] == C.token_ids()[C.BOS]).all()
    assert (toks[:, 1:21] == toks[:, 21:]).all() and (toks == C.repeated_random_tokens(4, 20, seed=0)).all()
    assert (toks[:, 1:] > 2).all()


def test_tokenizer_round_trip_and_bos(tmp_path):
    save_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert '"PreTrainedTokenizerFast"' in (tmp_path / "tokenizer_config.json").read_text()
    text = "when mary and john went to the store , john gave a drink to"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id == 0 and tok.convert_ids_to_tokens(ids)[0] == C.BOS
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert ids[1:] == [C.token_ids()[w] for w in text.split()]
    assert tok.pad_token == C.PAD and tok.unk_token == C.UNK


def test_every_word_is_one_token():
    tok = build_tokenizer()
    ids = C.token_ids()
    assert all(tok(w, add_special_tokens=False)["input_ids"] == [ids[w]] for w in C.vocabulary())


def test_held_out_batch_rows_are_full_length_bos_first_and_unseen_by_training():
    ids = C.token_ids()
    batch = C.held_out_batch(n=6, length=30)
    assert batch.shape == (6, 30)
    assert (batch[:, 0] == ids[C.BOS]).all()
    assert not (batch == ids[C.PAD]).any()
    training = next(C.training_stream(0))  # the recipes' seed
    assert [ids[w] for doc in training for w in doc.words][:30] != batch[0].tolist()


def test_held_out_batch_rejects_rows_longer_than_a_context():
    with pytest.raises(ValueError, match="length must be between 1 and the context size 64; got 65"):
        C.held_out_batch(n=1, length=65)


def test_full_length_contexts_are_full_unpadded_and_held_out():
    rows = C.full_length_contexts(6, 64, seed=10_000)
    ids = C.token_ids()
    assert rows.shape == (6, 64) and (rows[:, 0] == ids[C.BOS]).all()
    assert not (rows == ids[C.PAD]).any() and not (rows[:, 1:] == ids[C.BOS]).any()
    assert torch.equal(rows, C.full_length_contexts(6, 64, seed=10_000))
    assert not torch.equal(rows, C.full_length_contexts(6, 64, seed=10_001))


def test_full_length_documents_mark_where_whole_documents_end():
    rows, ends = C.full_length_documents(40, 64, seed=10_000)
    assert torch.equal(rows, C.full_length_contexts(40, 64, seed=10_000)) and ends.shape == rows.shape
    stop = rows == C.token_ids()["."]
    assert not (ends & ~stop).any()  # every whole document ends on its full stop
    assert (stop & ~ends).any()  # and some full stops sit inside a document (two-sentence IOI templates, repeats)
    assert not ends[:, 0].any()  # BOS ends nothing
    # the next document starts right after an end: a word that can open a document, never a second full stop
    after = rows[:, 1:][ends[:, :-1]]
    assert (after != C.token_ids()["."]).all()


def test_document_ends_mark_the_last_token_of_every_whole_document():
    parts = [["<|endoftext|>"], ["a", ".", "b", "."], ["c", "."], ["d", "e"]]  # BOS, two whole documents, a cut one
    assert C.document_ends(parts).tolist() == [False, False, False, False, True, False, True, False, False]
    assert C.document_ends([["<|endoftext|>"], ["a", "."], []]).tolist() == [False, False, True]  # nothing cut


def test_document_offsets_count_from_each_document_start():
    parts = [["<|endoftext|>"], ["a", ".", "b", "."], ["c", "."], ["d", "e"]]
    ends = C.document_ends(parts)
    assert C.document_offsets(ends).tolist() == [-1, 0, 1, 2, 3, 0, 1, 0, 1]
    assert C.document_offsets(torch.stack([ends, ends])).tolist() == [[-1, 0, 1, 2, 3, 0, 1, 0, 1]] * 2  # batched
    assert C.document_offsets(torch.zeros(4, dtype=torch.bool)).tolist() == [-1, 0, 1, 2]  # one document


def test_full_length_parts_are_the_documents_of_full_length_documents():
    rows, ends = C.full_length_documents(12, 64, seed=20_000)
    parts = C.full_length_parts(12, 64, seed=20_000)
    ids = C.token_ids()
    assert rows.tolist() == [[ids[w] for doc in row for w in doc.words] for row in parts]
    assert all(row[0].kind == "bos" and {doc.kind for doc in row[1:]} <= set(C.DEFAULT_WEIGHTS) for row in parts)
    starts = C.document_offsets(ends) == 0  # each document's first token, where its kind begins
    assert starts.sum().item() == sum(1 for row in parts for doc in row[1:] if doc.words)  # the cut one may be empty


def test_full_length_documents_of_another_mix():
    rows, ends = C.full_length_documents(20, 64, seed=10_000, weights=C.COURSE_LM_WEIGHTS)
    assert rows.shape == ends.shape == (20, 64) and not torch.equal(rows, C.full_length_contexts(20, 64, seed=10_000))
    assert torch.equal(rows, C.full_length_contexts(20, 64, seed=10_000, weights=C.COURSE_LM_WEIGHTS))


def test_random_word_contexts():
    rows = C.random_word_contexts(5, 64, seed=0)
    assert rows.shape == (5, 64) and (rows[:, 0] == C.token_ids()[C.BOS]).all()
    assert (rows[:, 1:] >= len(C.SPECIAL_TOKENS)).all()
