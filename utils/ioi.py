"""Indirect-object identification (IOI) from composable parts, with structures and names held out of training.

An IOI sentence introduces two people, then one of them (S, the subject) acts on the other (IO, the
indirect object): "when mary and john went to the store , john gave a drink to" -> mary. Sentences are
built from three parts, so that *structure* can be held out while every part is seen:

    intro   how A and B appear           "{A} met {B} at the {place} , and"
    middle  nothing, or a sentence       "{S} was happy . then"   (S appears a second time)
    action  what S does for the other    "{S} bought a {obj} for"

A family is one (intro, middle, action) combination: 7 x 3 x 4 = 84. HELD_OUT_FAMILIES (16 of them)
never occur in training, and HELD_OUT_NAMES (20 names) never occur in a training IOI sentence (they do in
other documents, so the model knows them as names). Evaluation on held-out families asks whether the
model composes the task rather than memorising sentence shapes (Wang et al. 2022 measured GPT-2 small on
15 templates it never trained on), on held-out names whether it copies a name from context rather than
recalling name-specific templates.

The language of `ioi-lm` (utils.zoo.train_lm) is these sentences, short "story" sentences that use every
name, the course's grammatical sentences and repeated random spans (so that copying heads form);
`vocabulary()` is its word list. In a quarter of the training IOI sentences the two names are other words
("when dog and cabinet went to the park , dog gave a drink to" -> cabinet): with names only, a model learned
an S-inhibition that worked for the names it had trained on and less for others (held-out names 0.66-0.91
top-1 over three seeds); with other words in the slots, the algorithm cannot rest on who the names are.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cache

import torch

from utils import corpus

BOS, PAD, UNK = corpus.BOS, corpus.PAD, corpus.UNK
MORE_NAMES = """anne beth chris dora fiona gina hugo isaac joel kim liam mona ned owen pam quinn rita seth tara
uma vince walt yara zoe bella colin dean faye glen holly ines jude""".split()
# 100 more names for training IOI sentences (176 in all), so that no name is special.
EXTRA_NAMES = """abby aaron adele alan albert alma andrew angela anton arthur audrey bruce bryan caleb carmen celia chloe
clara clive connor craig cyrus damon darren derek doris edwin elena eliza ellen elsie emil ethan felix
flora fred gavin gemma gloria gordon greta gwen harold heidi howard irene isla jacob jason jasper jenny
jerry jonah joyce karl keith lana lara lewis lena linda lois lola louis mabel marcus martha megan milo
molly monica nadia naomi neil nina norman olga otto percy phoebe ralph roger rosa rufus sally silas stella
stuart tessa theo thea tobias trevor viola vivian walter warren xavier yusuf zara""".split()
HELD_OUT_NAMES = MORE_NAMES[-20:]  # never in a training IOI sentence; in story sentences
TRAIN_NAMES = corpus.NAMES + MORE_NAMES[:-20] + EXTRA_NAMES
NAMES = TRAIN_NAMES + HELD_OUT_NAMES  # 196 single-token names
PLACES = "store park office school garden house station cafe market beach library farm river kitchen hall".split()
OBJECTS = "drink ball letter book flower key cake gift box card hat coin map lamp cup".split()
GIVE = "gave handed passed sent threw brought showed lent".split()
ARRIVED = "arrived met stopped waited".split()
INTROS = ["when {A} and {B} went to the {place} ,",
          "{A} and {B} went to the {place} .",
          "after {A} and {B} {arrived} at the {place} ,",
          "{A} met {B} at the {place} , and",
          "{A} was at the {place} . {B} was there too .",
          "the {place} was quiet when {A} and {B} {arrived} .",
          "{A} called {B} . later that day ,"]
MIDDLES = ["", "{S} was happy . then", "it was a long day . so"]
ACTIONS = ["{S} {give} a {obj} to", "{S} bought a {obj} for", "{S} made a {obj} for", "{S} said hello to"]
FAMILIES = list(itertools.product(range(len(INTROS)), range(len(MIDDLES)), range(len(ACTIONS))))
HELD_OUT_FAMILIES = tuple(sorted(random.Random(2024).sample(FAMILIES, 16)))
TRAIN_FAMILIES = tuple(f for f in FAMILIES if f not in HELD_OUT_FAMILIES)
STORIES = ["{N} went to the {place} .", "{N} saw {M} at the {place} .", "{N} has a {obj} .",
           "{N} and {M} are friends .", "{N} gave the {obj} back .", "{N} was happy .", "{M} called {N} ."]
DOC_WEIGHTS = {"ioi": 0.5, "story": 0.15, "grammar": 0.15, "repeat": 0.2}
WORD_NAME_SHARE = 0.25  # training IOI sentences whose two "names" are other words: the algorithm cannot be name-specific
SPLITS = {"train": (TRAIN_FAMILIES, TRAIN_NAMES), "held-out families": (HELD_OUT_FAMILIES, TRAIN_NAMES),
          "held-out names": (TRAIN_FAMILIES, HELD_OUT_NAMES), "held-out both": (HELD_OUT_FAMILIES, HELD_OUT_NAMES)}


@dataclass(frozen=True)
class Prompt:
    """An IOI prompt without its answer, and its ABC counterfactual (every S after the intro replaced by C).

    Positions index the BOS-prefixed tokens; s2_pos is S's last mention (the subject of the action)."""
    text: str
    io: str
    s: str
    abc_text: str
    abc_name: str
    family: tuple[int, int, int]
    io_pos: int
    s1_pos: int
    s2_pos: int


def template(family: tuple[int, int, int]) -> str:
    intro, middle, action = family
    return " ".join(part for part in (INTROS[intro], MIDDLES[middle], ACTIONS[action]) if part)


def sentence(rng: random.Random, family: tuple[int, int, int], io: str, s: str) -> list[str]:
    """The words of one IOI prompt of `family`; A/B order (ABBA or BABA) drawn with `rng`."""
    a, b = (io, s) if rng.random() < 0.5 else (s, io)
    return template(family).format(A=a, B=b, S=s, place=rng.choice(PLACES), obj=rng.choice(OBJECTS),
                                   give=rng.choice(GIVE), arrived=rng.choice(ARRIVED)).split()


def prompts(n: int, split: str = "train", seed: int = 0) -> list[Prompt]:
    """n prompts of `split` (see SPLITS), cycling through its families, each with an ABC counterfactual."""
    families, names = SPLITS[split]
    rng, out = random.Random(f"ioi-{split}-{seed}"), []
    for i in range(n):
        io, s, c = rng.sample(names, 3)
        words = sentence(rng, families[i % len(families)], io, s)
        s_positions = [j for j, w in enumerate(words) if w == s]
        abc = words[:s_positions[0] + 1] + [c if w == s else w for w in words[s_positions[0] + 1:]]
        out.append(Prompt(" ".join(words), io, s, " ".join(abc), c, families[i % len(families)],
                          io_pos=words.index(io) + 1, s1_pos=s_positions[0] + 1, s2_pos=s_positions[-1] + 1))
    return out


# ---------------------------------------------------------------- the training language of ioi-lm
@cache
def vocabulary() -> list[str]:
    """Every word the ioi-lm language emits (specials excluded), sorted."""
    words = set(NAMES) | set(PLACES) | set(OBJECTS) | set(GIVE) | set(ARRIVED)
    for text in INTROS + MIDDLES + ACTIONS + STORIES:
        words |= {w for w in text.split() if not w.startswith("{")}
    words |= {w for pair in corpus.NOUNS + corpus.INTRANSITIVE + corpus.TRANSITIVE for w in pair}
    words |= set(corpus.ADJECTIVES) | set(corpus.PREPOSITIONS) | set(corpus.ADVERBS) | set(corpus.FILLER_WORDS)
    return sorted(words | {"the", "this", "these", "is", "are", ",", "."})


@cache
def token_ids() -> dict[str, int]:
    """ioi-lm's tokenizer vocabulary: specials first (BOS 0, PAD 1, UNK 2), then `vocabulary()`."""
    return {w: i for i, w in enumerate(corpus.SPECIAL_TOKENS + vocabulary())}


@cache
def word_names() -> list[str]:
    """The words that stand in for names in WORD_NAME_SHARE of training IOI sentences: every word of the
    language but names and the words, places, objects and verbs that IOI sentences and stories are made of."""
    structure = {w for text in INTROS + MIDDLES + ACTIONS + STORIES for w in text.split()}
    structure |= set(PLACES) | set(OBJECTS) | set(GIVE) | set(ARRIVED) | {",", "."}
    return sorted(set(vocabulary()) - structure - set(NAMES))


def document(rng: random.Random, weights: dict[str, float]) -> list[str]:
    """One training document: an IOI sentence with its answer (with two names, or in WORD_NAME_SHARE of them
    two other words), a story sentence, a grammatical sentence, or a random span repeated after (maybe) a
    sentence."""
    kind = rng.choices(list(weights), list(weights.values()))[0]
    if kind == "ioi":
        io, s = rng.sample(word_names() if rng.random() < WORD_NAME_SHARE else TRAIN_NAMES, 2)
        return sentence(rng, rng.choice(TRAIN_FAMILIES), io, s) + [io, "."]
    if kind == "story":
        n, m = rng.sample(NAMES, 2)
        return rng.choice(STORIES).format(N=n, M=m, place=rng.choice(PLACES), obj=rng.choice(OBJECTS)).split()
    if kind == "grammar":
        return corpus.grammar_sentence(rng).words
    span = corpus.random_words(rng, rng.randint(3, 12), vocabulary())
    middle = corpus.grammar_sentence(rng).words if rng.random() < 0.5 else []
    return span + middle + span + ["."]


def context_documents(rng: random.Random, n_ctx: int, weights: dict[str, float] = DOC_WEIGHTS,
                      p_random: float = 0.1, fill: bool = False) -> list[list[str]]:
    """One training context in parts: [BOS], the whole documents, then the next document cut at n_ctx (empty
    unless `fill`); or (p_random) [BOS] + r + r and an empty tail. `context` joins the parts."""
    if rng.random() < p_random:
        span = corpus.random_words(rng, rng.randint(8, (n_ctx - 1) // 2), vocabulary())
        return [[BOS] + span + span, []]
    parts, length = [[BOS]], 1
    while True:
        doc = document(rng, weights)
        if length + len(doc) > n_ctx:
            return parts + [doc[: n_ctx - length] if fill else []]
        parts.append(doc)
        length += len(doc)


def context(rng: random.Random, n_ctx: int, weights: dict[str, float] = DOC_WEIGHTS, p_random: float = 0.1,
            fill: bool = False) -> list[str]:
    """One training context: BOS then whole documents (cut at n_ctx if `fill`), or [BOS] + r + r."""
    return [w for part in context_documents(rng, n_ctx, weights, p_random, fill) for w in part]


def encode(words: list[str], n_ctx: int | None = None) -> list[int]:
    """Token ids, right-padded with PAD to n_ctx if given."""
    ids = token_ids()
    row = [ids[w] for w in words]
    return row + [ids[PAD]] * ((n_ctx or len(row)) - len(row))


def full_length_contexts(n: int, n_ctx: int = 64, seed: int = 10_000) -> torch.Tensor:
    """n held-out contexts of the ioi-lm language, exactly n_ctx tokens each: token ids [n, n_ctx]."""
    return full_length_documents(n, n_ctx, seed)[0]


def full_length_documents(n: int, n_ctx: int = 64, seed: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """`full_length_contexts` and where its documents end: (token ids [n, n_ctx], ends [n, n_ctx] bool, True at the
    last token of every whole document). More than half of the documents hold a full stop inside (two-sentence
    structures, stories), so full stops do not mark where documents end."""
    rng = random.Random(f"held-out-{seed}")
    parts = [context_documents(rng, n_ctx, p_random=0.0, fill=True) for _ in range(n)]
    return (torch.tensor([encode([w for part in row for w in part]) for row in parts]),
            torch.stack([corpus.document_ends(row) for row in parts]))


# ---------------------------------------------------------------- behaviour
def scores(model, batch: list[Prompt]) -> dict[str, float]:
    """Top-1 (IO is the argmax over the whole vocabulary), mean logit(IO) - logit(S), and the same logit
    difference on the ABC counterfactuals (about 0 if the model uses the repeated name), at the last position."""
    to_id = model.to_single_token
    top, difference, abc = [], [], []
    with torch.no_grad():
        for p in batch:
            last = model(model.to_tokens(p.text))[0, -1]  # [vocab]
            abc_last = model(model.to_tokens(p.abc_text))[0, -1]
            top.append(float(last.argmax().item() == to_id(p.io)))
            difference.append((last[to_id(p.io)] - last[to_id(p.s)]).item())
            abc.append((abc_last[to_id(p.io)] - abc_last[to_id(p.s)]).item())
    n = len(batch)
    return {"top1": sum(top) / n, "logit_diff": sum(difference) / n, "abc_logit_diff": sum(abc) / n}
