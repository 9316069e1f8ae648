"""The world of facts-lm: people whose identity takes two tokens, their attributes, and the documents that
state them (notebook 05, causal tracing).

Every person is a (clan, given name) pair: 4 clans x 72 given names, 288 people. A clan is shared by 72
people and a given name by 4, so no single token identifies anyone: a model must combine the two before it can
look anything up. Each person has a country and a profession drawn at random, and a language that is a fixed
function of the country (LANGUAGE_OF), so part of what is known about a person can be derived from the rest.
Two kinds of document state facts:

- **fact**: "{clan} {given} [, clause ,] {relation phrase} {attribute} ." The relation is named after the
  subject, so the attribute must be retrieved at the last token (ROME's late site). In training, 80 % of fact
  sentences carry a clause and 75 % of those name another person ("who grew up near {other}", "like {other}",
  "according to {other}"): the last token cannot find the subject by its words, only by its place;
- **registry**: "records , {clan} {given} {the three attributes, in a random order} ." Any of the three may
  follow the name, so the best prediction at the last subject token puts a third on each of the person's
  attributes: the subject's representation must hold all three (ROME's subject enrichment).

Training starts with registry documents only (EARLY_WEIGHTS, for the recipe's first steps) and then adds
fact documents: by the time the model meets "{subject} {relation phrase}", the attributes are already
at the last subject token, and reading them from there is the cheapest way to recall. This is how the
model is built to have ROME's two sites; notebook 05 says so, and measures how far it worked.

Held out of training, for measuring generalisation: a new phrasing of each relation made only of words the
training phrasings use (so a miss is not an unknown word), two clauses, and any two clauses in a row
(training uses at most one). Evaluation prompts (`prompts`) keep the plain mixture: a training clause in half
of the "train phrasings" prompts, any of the nine.
"""

from __future__ import annotations

import random
from functools import cache

import torch

from utils import corpus
from utils.corpus import FactPrompt, Subject

WORLD_SEED = 4321  # fixes the people and their attributes; never changes
N_CLANS, N_GIVEN = 4, 72  # every (clan, given name) pair is a person: 288 people
CLANS = corpus._pseudo_words(N_CLANS, seed=11, avoid=set(corpus.NAMES))
GIVEN_NAMES = corpus._pseudo_words(N_GIVEN, seed=12, avoid=set(corpus.NAMES) | set(CLANS))
LANGUAGE_OF = {"france": "french", "spain": "spanish", "italy": "italian", "egypt": "arabic", "peru": "quechua",
               "chile": "spanish", "japan": "japanese", "india": "hindi", "kenya": "swahili", "norway": "norwegian",
               "sweden": "danish", "brazil": "german", "canada": "french", "mexico": "spanish",
               "greece": "russian"}  # an invented world: every language of corpus.RELATIONS, fixed by the country
TRAIN_PHRASES = corpus.RELATION_PHRASES
HELD_OUT_PHRASES = {"country": ["was raised in the country of"], "language": ["grew up speaking the language"],
                    "profession": ["was born to work as a"]}  # new orders of training words
TRAIN_CLAUSES = corpus.CLAUSES
HELD_OUT_CLAUSES = corpus.HELD_OUT_CLAUSES
NAMING_CLAUSES = [c for c in TRAIN_CLAUSES if "{other}" in c]  # clauses that name another person
PLAIN_CLAUSES = [c for c in TRAIN_CLAUSES if "{other}" not in c]
P_CLAUSE, P_NAMING = 0.8, 0.75  # training fact sentences: a clause in 80 %, naming another person in 75 % of those
DOC_WEIGHTS = {"fact": 0.35, "registry": 0.3, "grammar": 0.15, "repeat": 0.2}
EARLY_WEIGHTS = {"registry": 0.6, "grammar": 0.2, "repeat": 0.2}  # the first steps: no fact documents
SPLITS = ("train phrasings", "held-out phrasings", "held-out clauses", "two clauses")


@cache
def people() -> list[Subject]:
    """288 people, clan-major: every (clan, given name) pair; country and profession drawn at random,
    language = LANGUAGE_OF[country]."""
    rng = random.Random(WORLD_SEED)
    found = []
    for clan in CLANS:
        for given in GIVEN_NAMES:
            drawn = {relation: rng.choice(values) for relation, values in corpus.RELATIONS.items()}
            found.append(Subject((clan, given), {**drawn, "language": LANGUAGE_OF[drawn["country"]]}))
    return found


@cache
def vocabulary() -> list[str]:
    """Every word the facts-lm language emits (specials excluded), sorted."""
    words = set(CLANS) | set(GIVEN_NAMES) | {"records", ",", "."}
    words |= {w for values in corpus.RELATIONS.values() for w in values}
    for text in sum(corpus.RELATION_PHRASES.values(), []) + TRAIN_CLAUSES + HELD_OUT_CLAUSES:
        words |= {w for w in text.split() if w != "{other}"}
    words |= {w for pair in corpus.NOUNS + corpus.INTRANSITIVE + corpus.TRANSITIVE for w in pair}
    words |= set(corpus.ADJECTIVES) | set(corpus.PREPOSITIONS) | set(corpus.ADVERBS) | set(corpus.FILLER_WORDS)
    return sorted(words | {"the", "this", "these", "is", "are"})


@cache
def token_ids() -> dict[str, int]:
    """Specials first (BOS = 0, PAD = 1, UNK = 2), then `vocabulary()`."""
    return {w: i for i, w in enumerate(corpus.SPECIAL_TOKENS + vocabulary())}


def _clauses(rng: random.Random, clauses: list[str], person: Subject) -> list[str]:
    """", clause , clause ," with {other} filled by another person's name."""
    words = [","]
    for clause in clauses:
        if "{other}" in clause:
            clause = clause.format(other=rng.choice([p for p in people() if p is not person]).name)
        words += clause.split() + [","]
    return words


def fact_words(rng: random.Random, person: Subject, relation: str, split: str = "train phrasings") -> list[str]:
    """A fact prompt (no answer) of one split, as words; the subject is always the first two words."""
    words = list(person.words)
    phrases = HELD_OUT_PHRASES if split == "held-out phrasings" else TRAIN_PHRASES
    if split == "held-out clauses":
        words += _clauses(rng, [rng.choice(HELD_OUT_CLAUSES)], person)
    elif split == "two clauses":
        words += _clauses(rng, rng.sample(TRAIN_CLAUSES, 2), person)
    elif rng.random() < 0.5:
        words += _clauses(rng, [rng.choice(TRAIN_CLAUSES)], person)
    return words + rng.choice(phrases[relation]).split()


def training_fact_words(rng: random.Random, person: Subject, relation: str) -> list[str]:
    """A training fact sentence (no answer), as words: a clause in P_CLAUSE of them, naming another person in
    P_NAMING of those, so that most put another name between the subject and the relation."""
    words = list(person.words)
    if rng.random() < P_CLAUSE:
        words += _clauses(rng, [rng.choice(NAMING_CLAUSES if rng.random() < P_NAMING else PLAIN_CLAUSES)], person)
    return words + rng.choice(TRAIN_PHRASES[relation]).split()


def document(rng: random.Random, weights: dict[str, float] = DOC_WEIGHTS) -> list[str]:
    """One training document, as words."""
    kind = rng.choices(list(weights), list(weights.values()))[0]
    if kind == "fact":
        person, relation = rng.choice(people()), rng.choice(list(corpus.RELATIONS))
        return training_fact_words(rng, person, relation) + [person.attributes[relation], "."]
    if kind == "registry":
        person = rng.choice(people())
        attributes = [person.attributes[r] for r in rng.sample(list(corpus.RELATIONS), len(corpus.RELATIONS))]
        return ["records", ",", *person.words, *attributes, "."]
    if kind == "grammar":
        return corpus.grammar_sentence(rng).words
    span = corpus.random_words(rng, rng.randint(3, 12), vocabulary())
    return span + span + ["."]


def context_documents(rng: random.Random, n_ctx: int, weights: dict[str, float] = DOC_WEIGHTS,
                      p_random: float = 0.1) -> list[list[str]]:
    """One training context in parts: [BOS], the whole documents, then the next document cut at n_ctx (empty when
    the last whole one ends at n_ctx); or (p_random) BOS + r + r and an empty tail. `context` joins the parts."""
    if rng.random() < p_random:
        half = corpus.random_words(rng, (n_ctx - 1) // 2, vocabulary())
        return [[corpus.BOS] + half + half, []]
    parts, length = [[corpus.BOS]], 1
    while length < n_ctx:
        doc = document(rng, weights)
        if length + len(doc) > n_ctx:
            return parts + [doc[: n_ctx - length]]
        parts.append(doc)
        length += len(doc)
    return parts + [[]]


def context(rng: random.Random, n_ctx: int, weights: dict[str, float] = DOC_WEIGHTS, p_random: float = 0.1) -> list[str]:
    """One training context: BOS then documents up to n_ctx words, or (p_random) BOS + r + r."""
    return [w for part in context_documents(rng, n_ctx, weights, p_random) for w in part]


def encode(words: list[str], n_ctx: int | None = None) -> list[int]:
    """Token ids, right-padded with PAD to n_ctx when given."""
    ids = token_ids()
    row = [ids[w] for w in words]
    return row + [ids[corpus.PAD]] * ((n_ctx or len(row)) - len(row))


def prompts(n: int | None = None, split: str = "train phrasings", seed: int = 0) -> list[FactPrompt]:
    """Fact prompts of one split: one per (person, relation) when n is None, else n drawn at random.

    `subject_span` indexes the BOS-prefixed tokens: the subject is always tokens 1 and 2."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    rng = random.Random(seed)
    pairs = [(p, r) for p in people() for r in corpus.RELATIONS]
    chosen = pairs if n is None else [rng.choice(pairs) for _ in range(n)]
    out = []
    for person, relation in chosen:
        words = fact_words(rng, person, relation, split)
        out.append(FactPrompt(" ".join(words), [corpus.BOS] + words, person.name, relation,
                              person.attributes[relation], (1, 3)))
    return out


def recall(model, batch: list[FactPrompt]) -> float:
    """Top-1 recall: the share of prompts whose argmax next token is the attribute (a Hugging Face model)."""
    ids, hits = token_ids(), 0
    with torch.no_grad():
        for prompt in batch:
            logits = model(torch.tensor([[ids[corpus.BOS]] + encode(prompt.text.split())])).logits[0, -1]
            hits += int(logits.argmax().item() == ids[prompt.answer])
    return hits / len(batch)


def swapped_subject(prompt: FactPrompt, seed: int = 0) -> FactPrompt:
    """The same prompt about another person whose attribute for its relation differs (symmetric token
    replacement, Zhang & Nanda 2023: same length, same template); its `answer` is that person's."""
    rng = random.Random(seed)
    others = [p for p in people() if p.name != prompt.subject and p.attributes[prompt.relation] != prompt.answer]
    other = rng.choice(others)
    words = prompt.text.split()
    words[:2] = other.words
    return FactPrompt(" ".join(words), [corpus.BOS] + words, other.name, prompt.relation,
                      other.attributes[prompt.relation], prompt.subject_span)
