"""The course's synthetic language: a seeded training stream and the prompt sets notebooks use.

Every context starts with the BOS token `<|endoftext|>` and packs whole "documents" of these kinds:

- repeat:  a random run of words, then (maybe) a sentence, then the same run again (induction);
- ioi:     indirect-object sentences, "when mary and john went to the store , john gave a drink to mary";
- fact:    "tovel relan , who grew up by the sea , was born in the country of peru" for 300 invented
           people with 2-3 token names (first tokens shared by 30 people), three relations each, the
           relation named after the subject (ROME-style causal tracing);
- registry: "records , tovel relan peru french baker ." the attributes right after the name, so the
           last subject token must hold the subject's attributes (ROME's early site);
- lookup:  "records , peru mary , chile tom , japan ivan , italy lucy . tovel relan was born in the
           country of mary ." a code table, then a fact whose answer is the code of the subject's
           attribute: the attribute must reach the last token early enough for later layers to look it
           up in the table (ROME's late site);
- grammar: "the keys to the cabinet are old ." with part-of-speech and number labels (probing);
- random:  a whole context of [BOS] + r + r, r uniform random words (as in induction-head scores).

Words are lower-case and separated by single spaces, so one word is one token of the course tokenizer
(utils.tokenizer). The world (who was born where) is fixed; `seed` arguments only choose samples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache

import torch

BOS, PAD, UNK = "<|endoftext|>", "<|pad|>", "<|unk|>"
SPECIAL_TOKENS = [BOS, PAD, UNK]
WORLD_SEED = 1234  # fixes the facts; never changes

NAMES = """mary john tom james anna sarah david emma paul lisa mark laura peter kate adam alice ben
claire daniel ella frank grace henry helen ivan iris jack julia kevin lucy leo mia max nora nick olivia
oscar paula ryan rose sam sofia tim tina victor vera will wendy alex amy carl diana eric eva george
hannah ian jane luke maria noah ruth simon susan""".split()

IOI_TEMPLATES = [
    "when {a} and {b} went to the store , {s} gave a drink to",
    "when {a} and {b} went to the park , {s} gave a ball to",
    "after {a} and {b} went to the office , {s} handed a letter to",
    "then , {a} and {b} had a long argument , and afterwards {s} said to",
    "while {a} and {b} were working at the school , {s} gave a book to",
    "{a} and {b} went to the garden . {s} gave a flower to",
    "the day {a} and {b} arrived at the house , {s} sent a message to",
    "friends {a} and {b} found a key at the station . {s} gave it to",
    "{a} and {b} had lunch at the cafe . then {s} passed the salt to",
    "when {a} and {b} got a cake at the party , {s} decided to give it to",
    "since {a} and {b} were at the market , {s} bought a gift for",
    "after the game , {a} and {b} walked home . {s} threw the ball to",
]

FIRST_PARTS = "tovel marek suna ilka doran veli kasim orla pell zamir".split()
MIDDLE_PARTS = "van del ap".split()


def _pseudo_words(n: int, seed: int, avoid: set[str]) -> list[str]:
    """n distinct invented words like 'grakun', deterministic given seed."""
    onsets, vowels, codas = "b d f g h k l m n p r s t v z br dr gr kr st th".split(), "aeiou", "n r l s m th k".split()
    rng, words = random.Random(seed), []
    while len(words) < n:
        w = rng.choice(onsets) + rng.choice(vowels) + rng.choice(onsets[:10]) + rng.choice(vowels) + rng.choice(codas)
        if w not in avoid and w not in words:
            words.append(w)
    return words


LAST_PARTS = _pseudo_words(300, seed=7, avoid=set(NAMES) | set(FIRST_PARTS) | set(MIDDLE_PARTS))

RELATIONS = {
    "country": "france spain italy egypt peru chile japan india kenya norway sweden brazil canada mexico greece".split(),
    "language": "french spanish italian arabic quechua german japanese hindi swahili norwegian danish russian".split(),
    "profession": "baker teacher pilot doctor farmer sailor tailor painter writer lawyer nurse miner potter singer dancer".split(),
}
RELATION_PHRASES = {
    "country": ["was born in the country of", "grew up in the country of", "is a citizen of the country of"],
    "language": ["speaks the language", "writes letters in the language", "was raised speaking the language"],
    "profession": ["works as a", "earns a living as a", "was trained to work as a"],
}
CLAUSES = ["who grew up by the sea", "as the story goes", "after many years away", "like the rest of the family",
           "according to the old records", "who is now quite old",
           # another person between subject and relation: the last token cannot find the subject by what
           # its words are (one attention read from the embeddings); it needs the subject's context
           "who grew up near {other}", "like {other}", "according to {other}"]
HELD_OUT_CLAUSES = ["who rarely speaks of it", "as far as we know"]

NOUNS = [("key", "keys"), ("dog", "dogs"), ("book", "books"), ("cat", "cats"), ("box", "boxes"), ("car", "cars"),
         ("bird", "birds"), ("girl", "girls"), ("boy", "boys"), ("table", "tables"), ("cabinet", "cabinets"),
         ("door", "doors"), ("tree", "trees"), ("child", "children"), ("man", "men"), ("woman", "women"),
         ("letter", "letters"), ("house", "houses")]
ADJECTIVES = "old new small big red green happy quiet tall broken".split()
PREPOSITIONS = "to near behind under beside".split()
INTRANSITIVE = [("sleeps", "sleep"), ("waits", "wait"), ("falls", "fall"), ("stays", "stay")]
TRANSITIVE = [("sees", "see"), ("likes", "like"), ("finds", "find"), ("follows", "follow")]
ADVERBS = "quickly slowly often again".split()
POS_TAGS = ["DET", "ADJ", "NOUN", "PREP", "AUX", "VERB", "ADV", "PUNCT"]

FILLER_WORDS = "yes no it was a day . and so on the end".split()


@dataclass(frozen=True)
class Subject:
    """An invented person: their name's words and one attribute per relation."""
    words: tuple[str, ...]
    attributes: dict[str, str]

    @property
    def name(self) -> str:
        return " ".join(self.words)


@dataclass
class Document:
    """One generated piece of text; `labels` holds per-token targets where the generator knows them."""
    kind: str
    words: list[str]
    labels: dict[str, list] = field(default_factory=dict)


@dataclass
class IOIPrompt:
    """An IOI prompt (no answer) with its ABC counterfactual; positions index the BOS-prefixed tokens."""
    text: str
    io: str
    s: str
    abc_text: str
    abc_name: str
    template: int
    io_pos: int
    s1_pos: int
    s2_pos: int


@dataclass
class FactPrompt:
    """A fact prompt; `subject_span` = [start, end) in the BOS-prefixed tokens (`str_tokens`)."""
    text: str
    str_tokens: list[str]
    subject: str
    relation: str
    answer: str
    subject_span: tuple[int, int]


@dataclass
class ProbeSentence:
    """A labelled sentence: per-token POS tags and grammatical number (0 singular, 1 plural, -1 none)."""
    words: list[str]
    pos: list[str]
    number: list[int]
    subject_number: int
    subject_index: int
    verb_index: int


# ---------------------------------------------------------------- the world
@cache
def subjects() -> list[Subject]:
    """The 300 invented people: FIRST_PARTS[i // 30] [middle] LAST_PARTS[i], with fixed attributes.

    Each first token is shared by 30 people; the last token is each person's own, so a model can
    build the subject's representation at the last subject token (ROME's early site).
    """
    rng = random.Random(WORLD_SEED)
    people = []
    for i, last in enumerate(LAST_PARTS):
        first = FIRST_PARTS[i * len(FIRST_PARTS) // len(LAST_PARTS)]
        middle = (MIDDLE_PARTS[(i // 7) % len(MIDDLE_PARTS)],) if (i * 7) % 4 == 0 else ()
        attributes = {rel: rng.choice(values) for rel, values in RELATIONS.items()}
        people.append(Subject((first, *middle, last), attributes))
    return people


@cache
def vocabulary() -> list[str]:
    """Every word the generator can emit (specials excluded), sorted; one token each."""
    words = set(NAMES) | set(FIRST_PARTS) | set(MIDDLE_PARTS) | set(LAST_PARTS) | set(FILLER_WORDS)
    words |= {w for t in IOI_TEMPLATES for w in t.split() if not w.startswith("{")}
    words |= {w for values in RELATIONS.values() for w in values}
    words |= {w for text in sum(RELATION_PHRASES.values(), []) + CLAUSES + HELD_OUT_CLAUSES for w in text.split()
              if w != "{other}"}
    words |= {w for pair in NOUNS + INTRANSITIVE + TRANSITIVE for w in pair}
    words |= set(ADJECTIVES) | set(PREPOSITIONS) | set(ADVERBS) | {"the", "this", "these", "is", "are", ",", "."}
    return sorted(words)


@cache
def token_ids() -> dict[str, int]:
    """The tokenizer's vocabulary: specials first (BOS = 0, PAD = 1, UNK = 2), then `vocabulary()`."""
    return {w: i for i, w in enumerate(SPECIAL_TOKENS + vocabulary())}


# ---------------------------------------------------------------- documents
def ioi_words(rng: random.Random, template: int | None = None) -> tuple[list[str], str, str]:
    """An IOI prompt as words, with its indirect object (answer) and subject; random order (ABBA/BABA)."""
    t = rng.randrange(len(IOI_TEMPLATES)) if template is None else template
    io, s = rng.sample(NAMES, 2)
    a, b = (io, s) if rng.random() < 0.5 else (s, io)
    return IOI_TEMPLATES[t].format(a=a, b=b, s=s).split(), io, s


def fact_words(rng: random.Random, subject: Subject, relation: str, clauses: list[str] = CLAUSES,
               p_clause: float = 0.5) -> tuple[list[str], tuple[int, int]]:
    """A fact prompt (no answer) as words, and the subject's [start, end) word span (always 0, len(name))."""
    words = list(subject.words)
    if rng.random() < p_clause:
        clause = rng.choice(clauses)
        if "{other}" in clause:
            clause = clause.format(other=rng.choice([p for p in subjects() if p is not subject]).name)
        words += [","] + clause.split() + [","]
    words += rng.choice(RELATION_PHRASES[relation]).split()
    return words, (0, len(subject.words))


def lookup_words(rng: random.Random, subject: Subject, relation: str, n_entries: int = 4) -> tuple[list[str], str]:
    """A code table ("records , peru mary , chile tom , ...") then a fact prompt about `subject`; the
    answer is the code of the subject's attribute, so the attribute must reach the last token before
    the layers that look it up in the table (ROME's late site)."""
    true = subject.attributes[relation]
    values = rng.sample([v for v in RELATIONS[relation] if v != true], n_entries - 1) + [true]
    rng.shuffle(values)
    codes = rng.sample(NAMES, n_entries)
    table = ["records"] + [w for value, code in zip(values, codes) for w in (",", value, code)] + ["."]
    words, _ = fact_words(rng, subject, relation)
    return table + words, codes[values.index(true)]


def grammar_sentence(rng: random.Random) -> ProbeSentence:
    """A sentence with subject-verb agreement, often across a distractor noun of the other number."""
    words, pos, number = [], [], []

    def add(word: str, tag: str, num: int = -1) -> None:
        words.append(word), pos.append(tag), number.append(num)

    def noun_phrase(num: int) -> int:
        det = ("this", "these")[num] if rng.random() < 0.2 else "the"
        add(det, "DET", -1 if det == "the" else num)
        if rng.random() < 0.3:
            add(rng.choice(ADJECTIVES), "ADJ")
        add(rng.choice(NOUNS)[num], "NOUN", num)
        return len(words) - 1

    subject_number = rng.randrange(2)
    subject_index = noun_phrase(subject_number)
    if rng.random() < 0.6:
        add(rng.choice(PREPOSITIONS), "PREP")
        noun_phrase(1 - subject_number if rng.random() < 0.7 else subject_number)
    kind = rng.randrange(3)
    if kind == 0:
        add(("is", "are")[subject_number], "AUX", subject_number)
        add(rng.choice(ADJECTIVES), "ADJ")
    elif kind == 1:
        add(rng.choice(INTRANSITIVE)[subject_number], "VERB", subject_number)
        add(rng.choice(ADVERBS), "ADV")
    else:
        add(rng.choice(TRANSITIVE)[subject_number], "VERB", subject_number)
        noun_phrase(rng.randrange(2))
    verb_index = next(i for i, t in enumerate(pos) if t in ("AUX", "VERB"))
    add(".", "PUNCT")
    return ProbeSentence(words, pos, number, subject_number, subject_index, verb_index)


def random_words(rng: random.Random, n: int, vocab: list[str]) -> list[str]:
    """n words drawn uniformly (with replacement) from `vocab`."""
    return [rng.choice(vocab) for _ in range(n)]


def sample_document(rng: random.Random, people: list[Subject], vocab: list[str], weights: dict[str, float]) -> Document:
    """One training document of a kind drawn with `weights` (keys: repeat, ioi, fact, registry, grammar)."""
    kind = rng.choices(list(weights), list(weights.values()))[0]
    if kind == "ioi":
        words, io, _ = ioi_words(rng)
        return Document(kind, words + [io, "."])
    if kind == "fact":
        subject, relation = rng.choice(people), rng.choice(list(RELATIONS))
        words, _ = fact_words(rng, subject, relation)
        return Document(kind, words + [subject.attributes[relation], "."])
    if kind == "lookup":
        subject, relation = rng.choice(people), rng.choice(list(RELATIONS))
        words, code = lookup_words(rng, subject, relation)
        return Document(kind, words + [code, "."])
    if kind == "registry":  # attributes right after the name: a reason to enrich the last subject token
        subject = rng.choice(people)
        return Document(kind, ["records", ","] + list(subject.words) + [subject.attributes[r] for r in RELATIONS] + ["."])
    if kind == "grammar":
        s = grammar_sentence(rng)
        return Document(kind, s.words, {"pos": s.pos, "number": s.number})
    span = random_words(rng, rng.randint(3, 12), vocab)
    middle = grammar_sentence(rng).words if rng.random() < 0.5 else []
    return Document(kind, span + middle + span + ["."])


DEFAULT_WEIGHTS = {"fact": 0.45, "ioi": 0.25, "grammar": 0.15, "repeat": 0.15}
# course-lm's training mix (utils.zoo.train_lm): the default mix plus code tables and registries
COURSE_LM_WEIGHTS = {"fact": 0.3, "lookup": 0.15, "registry": 0.1, "ioi": 0.2, "grammar": 0.1, "repeat": 0.15}


def training_context(rng: random.Random, n_ctx: int, people: list[Subject], vocab: list[str],
                     weights: dict[str, float] = DEFAULT_WEIGHTS, p_random: float = 0.1,
                     fill: bool = False) -> list[Document]:
    """Documents packed after BOS into at most n_ctx tokens (the caller pads); or one [BOS]+r+r 'random' doc.

    fill=True packs one document more and cuts it, so the context has exactly n_ctx tokens (for
    measurements at full length; training packs whole documents).
    """
    if rng.random() < p_random:
        r = random_words(rng, rng.randint(8, (n_ctx - 1) // 2), vocab)
        return [Document("random", [BOS] + r + r)]
    docs, used = [Document("bos", [BOS])], 1
    for _ in range(3 * n_ctx):
        doc = sample_document(rng, people, vocab, weights)
        if used + len(doc.words) > n_ctx:
            if fill:
                docs.append(Document(doc.kind, doc.words[: n_ctx - used]))
            break
        docs.append(doc)
        used += len(doc.words)
    return docs


def training_stream(seed: int, n_ctx: int = 64, weights: dict[str, float] = DEFAULT_WEIGHTS,
                    p_random: float = 0.1):
    """Endless, deterministic generator of contexts (each a list of Documents starting with BOS)."""
    rng, people, vocab = random.Random(seed), subjects(), vocabulary()
    while True:
        yield training_context(rng, n_ctx, people, vocab, weights, p_random)


# ---------------------------------------------------------------- prompt sets for notebooks
def ioi_prompts(n: int = 100, seed: int = 0) -> list[IOIPrompt]:
    """n IOI prompts cycling through all templates, each with an ABC counterfactual (S2 -> a third name C)."""
    rng, prompts = random.Random(seed), []
    for i in range(n):
        words, io, s = ioi_words(rng, template=i % len(IOI_TEMPLATES))
        c = rng.choice([x for x in NAMES if x not in (io, s)])
        s1, s2 = [j for j, w in enumerate(words) if w == s]
        abc = words[:s2] + [c] + words[s2 + 1:]
        prompts.append(IOIPrompt(" ".join(words), io, s, " ".join(abc), c, i % len(IOI_TEMPLATES),
                                 io_pos=words.index(io) + 1, s1_pos=s1 + 1, s2_pos=s2 + 1))
    return prompts


def fact_prompts(n: int | None = None, seed: int = 0, held_out: bool = False) -> list[FactPrompt]:
    """Fact prompts, one per (subject, relation) shuffled by `seed` (900 if n is None).

    held_out=True puts a clause never seen in training between subject and relation.
    """
    rng = random.Random(seed)
    pairs = [(p, rel) for p in subjects() for rel in RELATIONS]
    rng.shuffle(pairs)
    prompts = []
    for person, rel in pairs[:n]:
        words, (b, e) = fact_words(rng, person, rel, HELD_OUT_CLAUSES if held_out else CLAUSES,
                                   p_clause=1.0 if held_out else 0.5)
        prompts.append(FactPrompt(" ".join(words), [BOS] + words, person.name, rel,
                                  person.attributes[rel], (b + 1, e + 1)))
    return prompts


def lookup_prompts(n: int = 200, seed: int = 0) -> list[FactPrompt]:
    """n code-table prompts (see `lookup_words`): `answer` is the code, `subject_span` the subject's tokens."""
    rng, people, prompts = random.Random(seed), subjects(), []
    for _ in range(n):
        person, rel = rng.choice(people), rng.choice(list(RELATIONS))
        words, code = lookup_words(rng, person, rel)
        start = words.index(".") + 1
        prompts.append(FactPrompt(" ".join(words), [BOS] + words, person.name, rel, code,
                                  (start + 1, start + 1 + len(person.words))))
    return prompts


def probing_sentences(n: int = 500, seed: int = 0) -> list[ProbeSentence]:
    """n labelled grammatical sentences (words, POS tags, number labels; no BOS)."""
    rng = random.Random(seed)
    return [grammar_sentence(rng) for _ in range(n)]


def repeated_random_tokens(batch: int = 10, length: int = 25, seed: int = 0) -> torch.Tensor:
    """Token ids [BOS] + r + r, r `length` uniform random words; shape [batch, 1 + 2 * length]."""
    rng, vocab, ids = random.Random(seed), vocabulary(), token_ids()
    rows = []
    for _ in range(batch):
        r = [ids[w] for w in random_words(rng, length, vocab)]
        rows.append([ids[BOS]] + r + r)
    return torch.tensor(rows)  # [batch, 1 + 2 * length]


def full_length_contexts(n: int, n_ctx: int = 64, seed: int = 10_000,
                         weights: dict[str, float] = DEFAULT_WEIGHTS) -> torch.Tensor:
    """n held-out contexts of a mix of the corpus's documents (by default DEFAULT_WEIGHTS; course-lm trained on
    COURSE_LM_WEIGHTS), each exactly n_ctx tokens (BOS first, no padding, the last document cut at the end; no
    [BOS] + r + r contexts): token ids [n, n_ctx]. Training streams use other seeds."""
    return full_length_documents(n, n_ctx, seed, weights)[0]


def full_length_documents(n: int, n_ctx: int = 64, seed: int = 10_000,
                          weights: dict[str, float] = DEFAULT_WEIGHTS) -> tuple[torch.Tensor, torch.Tensor]:
    """`full_length_contexts` and where its documents end: (token ids [n, n_ctx], ends [n, n_ctx] bool, True at
    the last token of every whole document; BOS and the cut last document end nowhere). A document's last token
    is its full stop, but not every full stop ends a document: two-sentence IOI templates and repeated spans with a
    sentence inside hold one."""
    ids = token_ids()
    parts = [[doc.words for doc in row] for row in full_length_parts(n, n_ctx, seed, weights)]
    return (torch.tensor([[ids[w] for part in row for w in part] for row in parts]),
            torch.stack([document_ends(row) for row in parts]))  # [n, n_ctx], [n, n_ctx]


def full_length_parts(n: int, n_ctx: int = 64, seed: int = 10_000,
                      weights: dict[str, float] = DEFAULT_WEIGHTS) -> list[list[Document]]:
    """The documents of `full_length_documents`' contexts (the same draws): per context, [BOS], the whole
    documents, then the one cut at the end; each Document's kind names the generator that wrote it."""
    rng, people, vocab = random.Random(seed), subjects(), vocabulary()
    return [training_context(rng, n_ctx, people, vocab, weights, p_random=0.0, fill=True) for _ in range(n)]


def document_ends(parts: list[list[str]]) -> torch.Tensor:
    """Where the whole documents of one context end. parts: [BOS], the whole documents, then the document cut at
    the end of the context -> bool [len]: True at the last token of every whole document."""
    lengths = torch.tensor([len(part) for part in parts])
    ends = torch.zeros(int(lengths.sum()), dtype=torch.bool)
    ends[lengths.cumsum(0)[1:-1] - 1] = True  # the last token of parts 1 .. n-2
    return ends


def document_offsets(ends: torch.Tensor) -> torch.Tensor:
    """Each token's position inside its document, from `document_ends`' mask: ends [..., pos] bool -> [..., pos]
    long, 0 at a document's first token and -1 at position 0 (BOS, in no document)."""
    positions = torch.arange(ends.shape[-1])  # [pos]
    next_start = torch.where(ends, positions + 1, 1)  # a document starts after each end, the first after BOS
    starts = torch.cat([torch.ones_like(next_start[..., :1]), next_start[..., :-1]], dim=-1).cummax(dim=-1).values
    return torch.where(positions == 0, -1, positions - starts)


def random_word_contexts(n: int, n_ctx: int = 64, seed: int = 0) -> torch.Tensor:
    """n contexts of BOS then n_ctx - 1 uniform random words: token ids [n, n_ctx]."""
    rng, vocab, ids = random.Random(seed), vocabulary(), token_ids()
    return torch.tensor([[ids[BOS]] + [ids[w] for w in random_words(rng, n_ctx - 1, vocab)] for _ in range(n)])


def held_out_batch(n: int, length: int, seed: int = 12345, n_ctx: int = 64) -> torch.Tensor:
    """n rows of exactly `length` token ids: openings of training-mix contexts that training never saw.

    Training streams use other seeds (utils.zoo.train_lm), so these are fresh samples of the same language:
    BOS first, no padding. Shape [n, length].
    """
    if not 1 <= length <= n_ctx:
        raise ValueError(f"length must be between 1 and the context size {n_ctx}; got {length}")
    ids, stream, rows = token_ids(), training_stream(seed, n_ctx), []
    while len(rows) < n:
        words = [w for doc in next(stream) for w in doc.words]
        if len(words) >= length:
            rows.append([ids[w] for w in words[:length]])
    return torch.tensor(rows)  # [n, length]
