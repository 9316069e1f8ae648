"""Recipes of the course's language models: their data (packed corpus contexts) and loss (next token).

    python -m utils.zoo.train course-lm       # 6-layer GPT-2 on the synthetic corpus -> models/course-lm/
    python -m utils.zoo.train attn-only-2l    # 2-layer attention-only native model -> models/attn-only-2l/
    python -m utils.zoo.train course-lm --smoke   # seconds-long run of a tiny variant into a temporary folder

(`python -m utils.zoo.train_lm NAME [--tiny]` still works.) The loop, config shape and schedule are
utils/zoo/training.py's, shared with the pointer models. Always run with OMP_NUM_THREADS=1 on small CPUs.
"""

from __future__ import annotations

import itertools
import random
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from utils import backcopy, corpus, facts, ioi
from utils.models import build_native, save_checkpoint, save_native
from utils.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from utils.zoo.training import ZOO_SEED, Recipe, TrainConfig, main

# AdamW(0.9, 0.98), weight decay 0.01, gradients clipped to norm 1; data parameters: p_random is the
# fraction of contexts that are [BOS] + r + r, doc_weights the mixture of the other contexts
LM_OPTIMISATION = dict(batch=32, final_lr=0.1, betas=(0.9, 0.98), weight_decay=0.01, grad_clip=1.0, seed=ZOO_SEED,
                       eval_every=100)
# course-lm's heads rest on the full stops that end packed documents, not on position 0 (issue 11). Tried
# 2026-12-02 (scratch, seed as shipped): weight decay 0.1 instead of 0.01 (Gu et al. 2024: weight decay encourages
# sinks): held-out loss 1.86 (shipped 1.93); sink heads beyond layer 0 on text 0.00 (largest alpha_0 0.25, uniform
# 0.074), on random words 0.10 (shipped 0.25), 0.30 of heads on full stops (shipped 0.45). Not adopted.
# Measured 2026-12-03 on the shipped weights: the heads rest on the start of the document they read, not on any full
# stop: from queries in the first document (no full stop behind them) 3.1 / 4.2 / 4.3 put 0.64 / 0.69 / 0.75 on BOS
# (uniform 0.18), from later documents no head beyond layer 0 puts more than 0.09 on BOS (uniform 0.03), and
# 0.30-0.35 of the heads put >= 0.3 on the current document's start (uniform 0.06; model_card "document_start").
# Packed documents of about 12 tokens leave position 0 the start of the first document only; on random words, one
# document, the same heads are position-0 sinks. Learning rate 3e-3 instead of 1.5e-3 (Gu et al.: sinks are weaker
# with small learning rates; seed as shipped, 2026-12-03): held-out loss 1.95 (shipped 1.93), sink heads on text 0.00
# (largest alpha_0 0.17), on random words 0.15 (shipped 0.25), on the current document's start 0.25 (shipped 0.30),
# at most 0.04 on BOS once a full stop has gone by: the same document-relative resting place. Not adopted. Held-out
# text with its full stops deleted: sink heads 0.05 (4.3 at 0.34), so without the marker the heads do not fall back
# on BOS either. Related documents (2026-12-03, seeds 0 and 1, scratch; Zhao et al. 2024's related-document packing):
# each context draws a cast of 2 people and 3 names, and its fact and IOI documents use only them, so earlier
# documents help later ones. Held-out loss 1.95 / 1.98 on the shipped mix (1.74 / 1.76 on its own related text),
# IOI and recall 1.00, 3 induction heads >= 0.7; sink heads on its own related text at full length 0.00 / 0.05
# (largest alpha_0 0.24 / 0.33), on random words 0.05 / 0.10 (fewer than shipped); heads on the current document's
# start 0.25 / 0.20. Heads rest on the latest full stop even when the documents before it are relevant: not adopted.
# And the resting weight is a sink's (model_card.resting_weight_moved, all six runs of the recipe): moved to BOS it
# changes held-out loss by -0.010 to +0.007 nats, moved to the document's first word by up to 1.57 (notebook 01).
# Longer training (2026-12-03, seed 0, scratch; BOS is a slightly better resting place on five of six runs):
# 12 000 and 18 000 steps, snapshots every 3000: sink heads on text 0.00 at every snapshot, BOS after a full stop
# <= 0.07, random-word sinks 0.10-0.25, held-out loss 2.01 / 1.94 at the end (shipped 1.93). Not adopted.
# The figures above took every full stop as a document's end and measured on the corpus's default mix; on 2026-12-04
# the card moved to 96 held-out contexts of the training mix with the generator's own document ends: the shipped
# seed has 4 heads (0.20) on the current document's start, not 6, and the move to BOS costs 0.00 (models/README.md).
# One document per context (2026-12-05, scratch world of stories, course-lm's size and optimiser, 10 % [BOS] + r + r;
# GPT-2 and LLM sinks form where most contexts are one document): each context BOS + one story about two people cut at
# 64 tokens (who has the object, pronouns, who thanks whom), full stops every ~7 tokens. 4000 steps, seed 0: sink heads
# on held-out stories at full length 0.00 (largest alpha_0 0.19), none resting on sentence starts either (heads have
# something to read everywhere); the same stories packed 2-4 sentences long: 0.00. Stories with questions answerable
# from one earlier sentence ("who has the key ? mary .", a sentence said again: jobs some heads have only now and
# then): 0.10 (2 heads, alpha_0 up to 0.52-0.56) at 4000 steps, seed 0, weight decay 0.01 or 0.1; seed 1 at 6000
# steps 0.05; five kinds of question, seed 0, 6000 steps: 0.05 (alpha_0 0.62). Random-word sinks 0.00 on every run
# (course-lm: 5). The first recipe with position-0 sinks on its own text, but at most 2 of the 5 heads a quarter needs.
# Active-dormant heads (2026-12-05, scratch; a separate small model for notebook 01's sinks, d_model 64, 4 heads,
# 2-4 layers, 4000 steps, after Guo et al. 2024's Bigram-Backcopy: a head whose job only follows a trigger word should
# rest on BOS everywhere else). One context = BOS + 63 words; share of sink heads beyond layer 0 at full length
# (uniform alpha_0 0.074) on held-out contexts, random words of the vocabulary alike unless said:
# - a bigram chain (6 successors per word) with triggers whose next word is the word before them ("again"), the
#   context's first word ("first") or an induction target ("as X"); 4 layers, seed 0, 3000 steps: all four layer-0
#   heads sinks (alpha_0 0.66-0.89), every later head near uniform (0.05-0.11): the jobs fit in layer 0, and a head
#   with no job spreads its attention evenly instead of resting on BOS. (The induction rule was not learned.)
# - the rule acting one word late (the word after the next copies), so that layer 0 must first note that the previous
#   word was a trigger and a head beyond it copies: the copy is learned on every run (top-1 1.000), and the copying
#   heads rest on BOS elsewhere (0.00 on BOS at the copy, 0.4-0.9 elsewhere) on some runs only: 3 layers, seeds 0 and
#   1 of two word lists: 0.38 / 0.12 and 0.12 / 0.12; 2 layers, seeds 0-2: 0.25 / 0.00 / 0.00; 2 layers with weight
#   decay 0.1 and lr 3e-3 (Gu et al.'s levers), seeds 0-1: 0.00 / 0.00. Layer 0's trigger detectors are sinks on 8 of
#   the 9 runs (1-3 heads at 0.31-0.82). Where the copying heads do not rest on BOS they attend evenly (entropy
#   2.9-3.4 nats): in a bigram chain a context's words come again, so their even average is a useful cache rather than
#   a cost. These sinks follow BOS part way: moved to position 32 it keeps 0.39-0.40 (uniform 0.02).
# - uniform random words instead of the chain (averaging the context is then no use): with the delayed rule the copy
#   was not learned in 4000 steps (2 and 3 layers); with immediate triggers and half the contexts [BOS] + r + r (layer
#   0 busy with previous-token heads) the copying moved beyond layer 0 and 2 of 4 seeds had sinks there (0.50 and
#   0.50-0.62), 2 had none, copy top-1 0.76-0.97, and on random words without trigger words no run had a sink (alpha_0
#   <= 0.27).
# A quarter of the heads beyond layer 0 on 2 of the 9 delayed-rule runs, not a typical seed: not adopted. What to try
# next: a language in which a copying head's even average costs (each word at most once per context outside the
# copies), and several trigger words with different copy targets, so that more heads than one or two have a part-time
# job.
COURSE_LM_CONFIG = TrainConfig(n_layers=6, d_model=128, n_heads=4, n_ctx=64, d_mlp=4 * 128, steps=6000, lr=1.5e-3,
                               warmup=200, **LM_OPTIMISATION,
                               data=dict(p_random=0.12, doc_weights=tuple(corpus.COURSE_LM_WEIGHTS.items())))
ATTN_ONLY_2L_CONFIG = TrainConfig(n_layers=2, d_model=64, n_heads=4, n_ctx=64, d_mlp=None, steps=3000, lr=3e-3,
                                  warmup=50, **LM_OPTIMISATION,
                                  checkpoints=(0, 250, 500, 750, 900, 1000, 1100, 1150, 1200, 1250, 1300, 1350, 1400,
                                               1500, 2000),
                                  data=dict(p_random=0.9, doc_weights=tuple(corpus.DEFAULT_WEIGHTS.items())))
# ioi-lm: IOI from composable parts (utils.ioi), structures and names held out; 4 layers, weight decay 0.1; 176 training
# names, and a quarter of the training IOI sentences put two other words in the name slots (utils.ioi.WORD_NAME_SHARE).
# Seeds 0-4 (`--seed N --out DIR`; models/ioi-lm/seeds.json), 200 prompts per split, held-out names / held-out both
# top-1: 0.97/1.00, 0.525/0.49, 0.965/0.98, 0.97/0.915, 0.93/0.94; held-out structures 0.985-1.00 on all five.
# Seed-dependent: the names bar on 4 of 5 seeds (seed 1 answers a training name not in the prompt in 92 of its 95
# misses: a prior over which names answer), a name-mover head by the card's rule (attention to IO >= 0.3 and mean
# ablation costing >= 10 % of the logit difference) on 1 of 5. Shipped: seed 2, which has both, not the best by names.
# What moved held-out names (seeds as listed; scratch runs, not shipped):
# - 76 training names, names only (the recipe to 2026-12-02): 0.66/0.73, 0.91/0.85, 0.84/0.865 (seeds 0, 1, 2);
# - 176 names, the extra 100 real names: 0.815/0.855, 0.71/0.645 (seeds 0, 1): more names alone do not do it;
# - 176 names, the extra 100 pseudo-words: 0.89/0.84, 0.935/0.96 (seeds 0, 2);
# - real names plus other words (names included) in a quarter of the slots: 0.96/0.91, 0.92/0.90 (seeds 0, 1).
IOI_LM_CONFIG = TrainConfig(n_layers=4, d_model=128, n_heads=4, n_ctx=64, d_mlp=4 * 128, steps=4000, lr=2e-3,
                            warmup=200, **{**LM_OPTIMISATION, "weight_decay": 0.1, "eval_every": 500, "seed": 2},
                            data=dict(p_random=0.1, doc_weights=tuple(ioi.DOC_WEIGHTS.items())))
# facts-lm: facts about people named by a clan and a given name (utils.facts: 4 x 72, language fixed by country, most
# training fact sentences name another person in a clause); course-lm's width and optimiser; the first 1000 steps see
# registry entries only (any attribute may follow the name), then fact sentences join. v5 (2026-12-06): v4's world
# and data on Pythia's layout (build_parallel_lm: GPT-NeoX, a block's attention and MLP read the same input, rotary
# positions, untied embeddings), 5 layers; shipped as seed 0 (models/facts-lm/seeds.json holds all five seeds and
# says why). In a GPT-2 block MLP 0 reads attention 0's output, combines the clan with the given name and carried the
# early site alone on every seed and every variant below; here MLP 0 sees the given name alone. v4 (GPT-2, 6 layers,
# seed 2) was shipped 2026-12-03 to 2026-12-06. What was tried on the way (seed 0, 4000 steps, 100 facts, fresh noise):
# - v1, fact documents from the start, a fixed-order registry: recall 1.00 / held-out phrasings 0.61 (unknown words);
#   last subject token at most 0.21, MLP effect in block 0 only; last token 0.52 after block 4.
# - v2, a registry whose header names the attribute that follows, held-out phrasings of known words: recall 1.00 on
#   every split but two clauses (0.89); last subject 0.26 (block 1), MLP block 0 only (0.16); last token 0.90.
# - v3 (24 x 24 name parts, each in 12 people; shipped until 2026-12-03): recall 1.00 on every split; last subject
#   0.15, flat over blocks 0-3, MLP block 0 only (0.14); last token 0.92 after block 4, block 4's attention alone
#   0.73. Seeds 1 and 2: recall 0.87-1.00, no early site either (last subject <= 0.13), and the answer reaches the
#   last token only in the last block (<= 0.22 before it).
#   Recall is a late lookup at the last token in all three recipes and seeds: the early site did not form (issue 11).
# - Four more worlds on seed 0 (scratch scripts; 60-100 recalled facts, 2 fresh noise samples each, hidden states):
#   names as ordered pairs from one pool with both orders people (the bag of name tokens no longer identifies
#   anyone): recall 1.00, last subject <= 0.13, MLP 0 only, last token 0.79 after block 4; biographies (2-3 facts
#   per document, the full name in every sentence, sentences in random order: Allen-Zhu & Li's augmentations),
#   at step 3000: last subject <= 0.15, MLP 0 only, last token 1.00 after block 4; this recipe at 12 layers, at step
#   2500: last subject <= 0.18, flat over blocks 0-7, MLP 0 only, last token 0.72 after block 10. Depth,
#   order and augmentation alone do not move recall off the last token. With 1 x std noise instead of 3, either
#   subject token alone recovers about half (0.45-0.54): at 3 x std the noised other token's junk, read by the
#   last token's attention, hides what one restored token holds.
# - People as (clan, given name), 4 clans x 72 given names (the given name narrows a person to 4, so the last token
#   need not read the first subject token): recall 1.00 on every split; the last subject token recovers 0.39 / 0.50
#   / 0.55 after blocks 0-2 (the first bar met) but its MLP effect is block 0's alone (0.35), and the answer now
#   reaches the last token only in the last block (0.09 after block 4): the late site is gone. One site moves to
#   the subject when the other leaves it; neither recipe yet gives both.
# - Four more worlds (2026-12-02, seed 0, 4000 steps unless said, 60-100 recalled facts, 2 noise samples each,
#   window 1):
#   names of 3 parts from one pool of 8 (ordered; no bag of parts identifies anyone): learns slowly (recall 0.67),
#   last subject <= 0.17, MLP 0 only, last token 0.35 after block 4. Names of 2 to 4 parts from one pool of 12, at
#   step 2000 (recall 0.95-0.99): last subject <= 0.18, MLP 0 only, last token 0.84 after block 4. Name parts that
#   are also bare nouns, after varied preambles ("it is known that ..."), so the first subject token cannot know it
#   starts a name: at step 2000 (recall 0.77-0.83) the last token reads the *last* subject token (0.25 after block
#   4; the first subject token 0.05 there), but the composition is late (block 4's attention 0.16 and MLP 0.13);
#   at step 4000 (recall 0.97-1.00) no restoration recovers more than 0.16 before the last block. The same world
#   at 8 layers, 3000 steps (recall 0.95-1.00): last token 0.77 after block 6 (the late site), last subject <= 0.16
#   in blocks 0-3 and 0.29 after block 4, its MLP effect block 0's alone (0.16). Across twelve
#   worlds (one stopped early), more parts, ordered parts and ambiguous parts do not put ROME's enrichment in
#   MLPs after layer 0 (scratch scripts described in the 2026-12-02 session notes).
# - Later on 2026-12-02 (seed 0, 100 recalled facts, 2 noise samples, window 1). 96 x 96 parts, 12 people per part
#   (1152 people), 4 or 8 heads, 5000 steps: recall 0.15-0.21, not learned; not traced. Language a fixed function of
#   country (a two-step recall), this recipe's names: recall 1.00, last token 0.30 / 0.95 after blocks 3 / 4, last
#   subject <= 0.07, MLP 0 only; no attribute decodable from the subject state (probe on held-out people <= 0.22).
#   The same with (clan, given name) people, 4 x 72: recall 0.63-1.00; the subject state *is* enriched (probe on
#   held-out people: country 0.33 after block 0, 0.60 after block 3, 0.78 after block 5; embeddings alone 0.10,
#   majority 0.07), yet restoring any subject token recovers <= 0.04: the last token's block-0 attention copies
#   the name tokens (alone 0.34) and the lookup runs at the last token (0.92 after block 4). A probe finds
#   enrichment that the prediction does not use.
# - v4 (shipped 2026-12-03 to 2026-12-06; "this recipe" in the entries below means v4): the same clan world with
#   another person named in a clause of 60 % of the training fact
#   sentences (a clause in 80 %, naming someone in 75 % of those; evaluation prompts unchanged), so the last token
#   must find the subject by its place, not its words: recall 1.00 on every split; the last token reads the subject
#   in block 3 (attention 0.31; the last token 0.98 after block 3: the late site); the last subject token recovers
#   0.21 / 0.25 / 0.22 after blocks 0-2 (another noise seed: 0.05 / 0.27 / 0.12; step 2000: 0.33 / 0.37 / 0.33) and its MLP
#   effect is still block 0's (0.21; blocks 1-2 0.02), though the probe finds enrichment rising through blocks 0-3
#   (country 0.28 / 0.42 / 0.58 / 0.64). The same distractors with this recipe's names: no enrichment, last subject
#   <= 0.13, last token 0.58 after block 4. ROME's shape without ROME's size: below the 0.5 bar. Restoring both
#   subject tokens recovers 0.58 / 0.36 / 0.30 after blocks 0-2: the noise has spread into the positions after the
#   subject, which the last token also reads. With symmetric token replacement instead of noise (swapped_subject),
#   the last subject token recovers 1.00 of the logit difference after blocks 0-2 and the last token 1.00 after
#   block 3 (block 3's attention alone 1.00); per-layer MLP patching there: MLP 0 0.94, MLPs 1-2 0.05 each.
#   Fragile: without the derived language the last token reads the subject in block 1 (noise: last token 0.46
#   after block 1; STR: last subject 0.84 after block 0 only), and with 8 clans x 36 given names the read is split
#   (STR: last subject 0.47-0.49 through block 3, last token 0.50-0.54 before block 4; noise: last subject <= 0.15).
#   Seeds 1 and 2 of the clan + derived + distractor world (recall 1.00 on every split): under noise the last subject
#   token recovers 0.53 / 0.63 / 0.54 after blocks 0-2 (seed 1) and 0.56 / 0.41 / 0.02 (seed 2), the last token 0.99
#   after block 4 (seed 1) and 0.85 / 0.97 after blocks 2 / 3 (seed 2); under STR the last subject 0.97-1.00 until the
#   handoff on both (blocks 4 and 2). The MLP effect stays block 0's on all three seeds (0.21 / 0.43 / 0.59 against
#   0.02 / 0.02 / 0.06 for MLPs 1-2): the early bar's size met on 2 of 3 seeds, its MLP condition on none.
#   Seeds 3 and 4 (2026-12-03, the recipe's own code): last subject 0.49 / 0.24, MLP 0 0.48 / 0.25, later MLPs <= 0.03;
#   over five seeds the early bar's size is met on 2 (seeds 1, 2), the late site on 5, the MLP condition on none.
# - v4 with narrower MLPs (storage pressure, to spread the subject's lookup over MLPs; seed 0 unless said, card
#   protocol): d_mlp 256: MLP 0 at the last subject 0.10, MLPs 1-2 0.04 / 0.03, last subject <= 0.24, late site 0.96
#   after block 3. d_mlp 128: MLP 0 0.05, MLP 1 0.08 (the nearest any run came to the MLP condition), last subject
#   0.44 / 0.46 after blocks 0 / 1, but held-out clauses recall 0.77; its seed 1: the last token reads the subject
#   after block 1 (0.63) and no MLP at the subject matters (<= 0.01). d_mlp 64: no MLP at the subject matters
#   (<= 0.02) and the answer reaches the last token only in the last block. Narrower MLPs move the lookup to the
#   last token, not into MLPs 1-2 at the subject.
# - Three-token names (4 clans x 4 families x 18 given names, every triple a person, v4's language and distractors;
#   seeds 0 and 1): recall 1.00 on every split, but the answer reaches the last token only in the last block (<= 0.10
#   before it), the last subject token recovers <= 0.15 under noise (two other noised name tokens), no MLP at the
#   subject matters (<= 0.08, block 0's); with STR the last subject token carries 0.96-1.00 until block 4.
# - v4 at 8 layers (seeds 0, 1; 4000 steps, 19 min each): recall 1.00 on every split; last subject 0.27 / 0.24 / 0.26
#   after blocks 0-2 (seed 0) and 0.35 / 0.33 / 0.19 / 0.20 after blocks 0-3 (seed 1), MLP 0 at the last subject
#   0.28 / 0.31 and every later MLP <= 0.02; the last token 0.83 after block 3 (seed 0), 0.92 after block 5 (seed 1);
#   STR: the last subject token carries 1.00 (seed 0) and 0.94-0.96 (seed 1) through blocks 0-1. More depth leaves
#   the lookup in MLP 0 and shrinks the early site under noise.
# - Second mentions (2026-12-03, scratch; this recipe's steps and optimiser, the card's protocol on second-mention
#   prompts): a sentence names two people with different given names ("{clan} {given} sees {clan} {given} ."), the
#   next names one of them by the given name alone, so the clan is known only from the earlier sentence and block 0
#   cannot combine the two at the subject (one token, the given name). Second-mention documents 35 % of the mix
#   (variant A: 40 % of them list the person's three attributes right after the given name, registry-style; B: none)
#   or 45 % with 70 % listings (C). Recall 0.80-1.00 on every split (a held-out verb in the first sentence with the
#   held-out phrasings). MLP 0 at the subject now recovers 0.48-0.89: restoring which given name it is. Later MLPs
#   at the subject, window 1: A seed 2 0.09 / 0.05 / 0.04 / 0.07 (MLPs 1-2 together 0.13), A seed 0 <= 0.03, B seed 2
#   <= 0.02 (MLP 2 -0.41), C seed 2 0.09 / 0.04 / 0.08 / 0.14 (block 4, the second half; late site 0.68, below the
#   0.7 bar), C seed 0 <= 0.06 (held-out recall 0.80-0.83), C seed 1 MLP 1 -0.91, the rest <= 0.01. The composition
#   spreads thinly over MLPs 1-4 on some seeds and nowhere on others: the MLP condition on none of six runs.
#   A at 8 layers (seeds 2, 0): the last token takes the subject over after block 1 (0.93) or 2 (0.96), every later
#   MLP at the subject <= 0.03, held-out clauses 0.27 on seed 0: depth moves the composition to the last token.
# - Parallel blocks (2026-12-05, scratch: this recipe's world, data, steps and optimiser on a GPT-NeoX layout, Pythia's
#   and GPT-J's: attention and MLP read the same block input, so MLP 0 sees its own token only and cannot combine the
#   clan with the given name; rotary positions, untied embeddings; the card's per-seed protocol, and ROME's Figure 3 on
#   60 facts: the hidden state restored after block l with the MLP outputs at the subject in later blocks kept
#   corrupted). The bridge boots GPT-NeoX with default_prepend_bos False: set it True (the course's tokenizer adds BOS).
#     run        2 clauses  last subject, first half   last token  MLP 0  later MLPs (1st half; together)  severed
#     6L seed 2  0.99       0.38 / 0.51 / 0.68         0.80 (b3)   0.07   <= 0.04 (1-2: 0.09)               0.40 -> 0.26 (b0)
#     6L seed 0  0.92       0.23 / 0.35 / 0.50         0.92 (b4)   0.05   <= 0.05 (0.05)                    0.41 -> 0.18 (b1)
#     6L reg.55  1.00       0.26 / 0.33 / 0.63         0.74 (b3)   0.04   <= 0.05 (0.10)                    0.26 -> 0.17 (b0)
#     8L seed 2  0.74       0.36 / 0.41 / 0.46 / 0.51  0.84 (b6)   0.11   <= 0.05 (1-3: 0.13)               0.47 -> 0.32 (b2)
#     8L seed 0  0.99       0.33 / 0.49 / 0.55 / 0.59  0.90 (b6)   0.07   <= 0.01 (0.03)                    0.60 -> 0.24 (b2)
#     8L seed 1  0.62       0.19 / 0.50 / 0.60 / 0.78  0.99 (b6)   0.04   <= 0.05 (0.12)                    0.60 -> 0.14 (b2)
#   (reg.55: registry documents 0.55 of the mix; two clauses: recall on 300 held-out prompts, the other splits 1.00.)
#   The early site now builds up block by block, as in ROME, MLP 0 no longer carries it, and ROME's own mediation test
#   finds it running through the later MLPs (most of it at 8 layers); yet no single later MLP restored alone recovers
#   0.1 in the first half on any run (two reach 0.08 and 0.10 in the second), so the test's single-MLP condition stays
#   unmet; at 8 layers two of three seeds fail the two-clause split. The shipped (sequential) facts-lm, the same test:
#   0.53 -> 0.39 after block 0 (model card): its later MLPs carry a quarter.
# - Untied embeddings (2026-12-05, scratch: this recipe with tie_word_embeddings False, seeds 2 / 0 / 1 / 3, the
#   card's per-seed protocol): best later MLP at the last subject 0.12 / 0.01 / 0.07 / 0.04 (seed 2 on the acceptance
#   test's prompts: MLP 1 0.09 [0.06, 0.12]), MLP 0 0.60 / 0.39 / 0.54 / 0.27; last subject, best of blocks 0-2, 0.61 /
#   0.47 / 0.53 / 0.30; held-out clauses 0.69 on seed 1, two clauses 0.947 on seed 2 (0.937 on the test's prompts).
#   No closer to the single-MLP condition. Norms at the last subject token (60 clean facts) are the same tied or
#   untied and consistent with why: MLP 0 writes 12-15 there, MLPs 1 and 2 3.5-4.5, the noise 2.5-2.8 per token (the
#   embedding 1.1-1.4), so one later MLP restored alone sits beside a corrupted MLP 0 output three times its size.
#   On the shipped weights (60 facts, 3 fresh draws each), MLP 1 restored alone at the last subject recovers 0.01
#   [-0.01, 0.03] as the card measures it and 0.10 [0.05, 0.15] when MLP 0's corrupted output there is replaced by
#   its mean clean value (the difference, fact by fact, 0.09 [0.03, 0.15]).
# - Stochastic depth on the MLPs (2026-12-05, scratch: every block's MLP output dropped for a whole context with
#   probability 0.25 in training, scaled by 1 / 0.75, off in evaluation; seeds 2 / 0), to make no single MLP
#   indispensable: the opposite of what was hoped. No MLP at the last subject matters any more (MLP 0 0.04 / 0.02,
#   later ones <= 0.01); the last token takes the subject over after block 1 (0.55, 0.83 after block 2) or block 2
#   (0.85); the last subject token recovers 0.55 after block 0 only (seed 2) or 0.39 / 0.36 after blocks 0-1 (seed 0);
#   held-out clauses 0.90 on seed 0.
# - Twice the people (2026-12-05, scratch: 4 clans x 144 given names, 576 people, else this recipe; seeds 2 / 0), for
#   storage pressure at the subject: recall 0.99-1.00 on every split; MLP 0 at the last subject 0.23 / 0.36, every
#   later MLP <= 0.03; seed 2's last token takes the subject over after block 1 (0.58; 0.93 after block 2) and its
#   last subject token recovers 0.25 after block 0 only; seed 0 0.39 / 0.41 / 0.38 after blocks 0-2, last token 0.90
#   after block 3. More people moved nothing into the later MLPs.
# - The zoo run of 2026-12-05 (this recipe, seed 2, retrained on an AMD EPYC: other weights than the shipped ones):
#   card protocol, last subject 0.44 / 0.49 after blocks 0 / 1, MLP 0 0.34, MLP 1 0.06 (0.09 [0.06, 0.12] on the
#   acceptance test's prompts), last token 0.93 after block 4, recall 1.00 on every split.
# - 2026-12-06 (scratch; card protocol, and the MLPs at the last subject restored in sets, model_card.mlp_sets):
#   weight decay 0.1 on every parameter (nanoGPT's default; seed 2): the last token takes the subject over after block
#   2 (0.68), MLP 0 at the subject 0.22, later MLPs <= 0.02. Weight decay 0.5 on MLP 0 alone (seed 2): MLP 0 0.25,
#   later MLPs <= 0.01, the attention trace peaks at the last subject token. Weakening MLP 0 moves the lookup to the
#   last token, not into later MLPs. On v4 (shipped seed 2), MLPs 1-5 restored together at the last subject recover
#   0.03 [0.01, 0.05] (ROME's windows of 2 and 3: <= 0.03 off block 0), all six 0.60 = MLP 0 alone.
#   Parallel layout at 4 layers (seeds 2 / 0): recall 0.92-1.00; seed 2 MLP 2 at the subject 0.19 [0.15, 0.24] but
#   the answer reaches the last token only in the last block; seed 0 last subject 0.41, late site 0.60. At 5 layers
#   (v5, seeds 0-4): see seeds.json; the parallel layout at 6 and 8 layers is the table above.
FACTS_LM_CONFIG = TrainConfig(n_layers=5, d_model=128, n_heads=4, n_ctx=64, d_mlp=4 * 128, steps=4000, lr=1.5e-3,
                              warmup=200, **{**LM_OPTIMISATION, "eval_every": 500},
                              checkpoints=(1500, 2500, 3000),
                              data=dict(p_random=0.1, doc_weights=tuple(facts.DOC_WEIGHTS.items()),
                                        early_doc_weights=tuple(facts.EARLY_WEIGHTS.items()), early_steps=1000))
# backcopy-lm: notebook 01's sinks on a model's own text (utils.backcopy: a bigram chain without repeats and two
# trigger words whose copy acts one word late; issue 11). Shipped 2026-12-05: seed 0, the recipe's default; seeds 0-4
# in models/backcopy-lm/seeds.json (model_card.backcopy_figures: 96 held-out contexts at 64 tokens, uniform alpha_0
# 0.074): copy top-1 0.989-0.996; sinks beyond layer 0 on held-out contexts and on random words 8 / 8 / 8 / 7 / 8 of 8;
# with BOS dropped (a word at position 0) 0.75-1.00 of the heads stay sinks; BOS writes at most 0.21-0.34 of an
# average key through any sink head. On the shipped seed 7 of the 8 are
# active-dormant (<= 0.02 on BOS from the copy positions, 0.63-0.83 from the others) and BOS moved to position 32
# still draws 0.49 (uniform 0.02): the sink belongs to position 0 as much as to BOS. On scratch runs of the same
# language at 8000 steps (another word list, seeds 0-1): 7 of 8 sinks, copy top-1 0.96; moving a sink head's BOS
# weight onto its other keys cost <= 0.011 nats, switching the head off 0.04-0.10.
BACKCOPY_LM_CONFIG = TrainConfig(n_layers=3, d_model=64, n_heads=4, n_ctx=64, d_mlp=4 * 64, steps=12_000, lr=1.5e-3,
                                 warmup=200, **{**LM_OPTIMISATION, "eval_every": 1000},
                                 data=dict(p_random=0.0, doc_weights=(("chain", 1.0),)))
TINY = dict(n_layers=1, d_model=16, n_heads=2, steps=3, batch=2, warmup=1)  # smoke runs


# ---------------------------------------------------------------- data and loss
def context_to_ids(docs: list[corpus.Document], n_ctx: int) -> list[int]:
    """Token ids of one packed context, right-padded with PAD to n_ctx."""
    ids = corpus.token_ids()
    row = [ids[w] for doc in docs for w in doc.words][:n_ctx]
    return row + [ids[corpus.PAD]] * (n_ctx - len(row))


def batches(cfg: TrainConfig):
    """Endless deterministic batches of token ids, shape [batch, n_ctx]."""
    stream = corpus.training_stream(cfg.seed, cfg.n_ctx, dict(cfg.data["doc_weights"]), cfg.data["p_random"])
    while True:
        yield torch.tensor([context_to_ids(next(stream), cfg.n_ctx) for _ in range(cfg.batch)])


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, ignoring PAD targets. logits [batch, pos, vocab], tokens [batch, pos]."""
    targets = tokens[:, 1:].masked_fill(tokens[:, 1:] == corpus.token_ids()[corpus.PAD], -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)


# ---------------------------------------------------------------- course-lm: GPT-2 (Hugging Face)
def build_course_lm(cfg: TrainConfig, out: Path | None = None, vocab_size: int | None = None):
    """A freshly initialised GPT2LMHeadModel (eager attention, no dropout) for the course vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    ids = corpus.token_ids()
    # n_inner=None is GPT-2's own 4 * d_model: config.json stays as shipped
    n_inner = None if cfg.d_mlp == 4 * cfg.d_model else cfg.d_mlp
    config = GPT2Config(vocab_size=vocab_size or len(ids), n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                        n_head=cfg.n_heads, n_inner=n_inner, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=ids[corpus.BOS], eos_token_id=ids[corpus.BOS], pad_token_id=ids[corpus.PAD])
    config._attn_implementation = "eager"
    torch.manual_seed(cfg.seed)
    return GPT2LMHeadModel(config)


def save_course_lm(model, cfg: TrainConfig, out: Path) -> None:
    model.save_pretrained(str(out))
    save_tokenizer(out)


# ---------------------------------------------------------------- attn-only-2l: native TransformerBridge
def native_config(cfg: TrainConfig) -> dict:
    """TransformerBridgeConfig fields of the attention-only model (saved as native_config.json)."""
    assert cfg.d_mlp is None, "attn-only-2l has no MLPs"
    return dict(d_model=cfg.d_model, d_head=cfg.d_model // cfg.n_heads, n_heads=cfg.n_heads, n_layers=cfg.n_layers,
                n_ctx=cfg.n_ctx, d_vocab=len(corpus.token_ids()), attn_only=True, normalization_type="LN",
                seed=cfg.seed)


def build_attn_only(cfg: TrainConfig, out: Path):
    save_tokenizer(out)  # boot_native needs a tokenizer loaded from disk
    torch.manual_seed(cfg.seed)
    return build_native(native_config(cfg), load_tokenizer(out))


def save_attn_only(model, cfg: TrainConfig, out: Path) -> None:
    save_native(model, native_config(cfg), out)


# ---------------------------------------------------------------- ioi-lm and facts-lm: GPT-2 (Hugging Face) on a world
# A world is a module with its own language (utils.ioi, utils.facts): token_ids(), context(rng, n_ctx, weights,
# p_random) and encode(words, n_ctx).
def world_batches(world, cfg: TrainConfig):
    """Endless deterministic batches of one world's contexts, [batch, n_ctx]; the first `early_steps` batches
    draw documents from `early_doc_weights` when the recipe's data names them (a curriculum)."""
    rng, weights = random.Random(cfg.seed), dict(cfg.data["doc_weights"])
    early_weights, early_steps = dict(cfg.data.get("early_doc_weights", ())), cfg.data.get("early_steps", 0)
    for step in itertools.count():
        mixture = early_weights if step < early_steps else weights
        yield torch.tensor([world.encode(world.context(rng, cfg.n_ctx, mixture, cfg.data["p_random"]), cfg.n_ctx)
                            for _ in range(cfg.batch)])


def snapshot_world_lm(model, out: Path, step: int) -> None:
    """A training snapshot as a Hugging Face folder: out/checkpoints/step_NNNNNN/."""
    model.save_pretrained(str(Path(out) / "checkpoints" / f"step_{step:06d}"))


def build_world_lm(world, cfg: TrainConfig, out: Path | None = None):
    return build_course_lm(cfg, out, vocab_size=len(world.token_ids()))


def build_parallel_lm(world, cfg: TrainConfig, out: Path | None = None):
    """A freshly initialised GPTNeoXForCausalLM (Pythia's layout: attention and MLP read the same block input; rotary
    positions on a quarter of each head; untied embeddings; eager attention, no dropout) for `world`'s vocabulary."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    ids = corpus.token_ids()
    config = GPTNeoXConfig(vocab_size=len(world.token_ids()), hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
                           num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_mlp,
                           max_position_embeddings=cfg.n_ctx, use_parallel_residual=True, tie_word_embeddings=False,
                           bos_token_id=ids[corpus.BOS], eos_token_id=ids[corpus.BOS], pad_token_id=ids[corpus.PAD],
                           use_cache=False)
    config._attn_implementation = "eager"
    torch.manual_seed(cfg.seed)
    return GPTNeoXForCausalLM(config)


def save_world_lm(world, model, cfg: TrainConfig, out: Path) -> None:
    model.save_pretrained(str(out))
    save_tokenizer(out, build_tokenizer(world.token_ids()))


IOI_EVAL = {split: ioi.prompts(48, split, seed=99) for split in ioi.SPLITS}  # evaluation only: seed 99
FACTS_EVAL = {split: facts.prompts(48, split, seed=99) for split in facts.SPLITS}


def evaluate_ioi(model, cfg: TrainConfig, step: int) -> dict:
    """Top-1 of IO over the vocabulary on each split (48 prompts each), in the HF model (no bridge)."""
    out = {}
    for split, batch in IOI_EVAL.items():
        hits = [model(torch.tensor([[0] + ioi.encode(p.text.split())])).logits[0, -1].argmax().item()
                == ioi.token_ids()[p.io] for p in batch]
        out[split.replace(" ", "_")] = round(sum(hits) / len(hits), 3)
    return out


BACKCOPY_EVAL = backcopy.full_length_contexts(48, seed=99)  # evaluation only: seed 99


def evaluate_backcopy(model, cfg: TrainConfig, step: int) -> dict:
    """Top-1 at the copy positions of 48 held-out contexts, in the HF model (no bridge)."""
    copy = backcopy.copy_positions(BACKCOPY_EVAL)[:, :-1]  # [batch, pos - 1]
    predicted = model(BACKCOPY_EVAL).logits[:, :-1].argmax(-1)  # [batch, pos - 1]
    return {"copy_top1": round((predicted == BACKCOPY_EVAL[:, 1:])[copy].float().mean().item(), 3)}


def evaluate_facts(model, cfg: TrainConfig, step: int) -> dict:
    """Top-1 recall of the attribute on each split (48 prompts each), in the HF model (no bridge)."""
    return {split.replace(" ", "_"): round(facts.recall(model, batch), 3) for split, batch in FACTS_EVAL.items()}


COURSE_LM = Recipe("course-lm", COURSE_LM_CONFIG, build=build_course_lm, batches=batches,
                   loss=lambda model, tokens: lm_loss(model(tokens).logits, tokens), save=save_course_lm,
                   smoke={**TINY, "d_mlp": 4 * TINY["d_model"]})
ATTN_ONLY_2L = Recipe("attn-only-2l", ATTN_ONLY_2L_CONFIG, build=build_attn_only, batches=batches,
                      loss=lambda model, tokens: lm_loss(model(tokens, return_type="logits"), tokens),
                      save=save_attn_only, snapshot=save_checkpoint, smoke=TINY)
IOI_LM = Recipe("ioi-lm", IOI_LM_CONFIG, build=partial(build_world_lm, ioi), batches=partial(world_batches, ioi),
                loss=lambda model, tokens: lm_loss(model(tokens).logits, tokens), save=partial(save_world_lm, ioi),
                evaluate=evaluate_ioi, smoke={**TINY, "d_mlp": 4 * TINY["d_model"]})
FACTS_LM = Recipe("facts-lm", FACTS_LM_CONFIG, build=partial(build_parallel_lm, facts),
                  batches=partial(world_batches, facts), loss=lambda model, tokens: lm_loss(model(tokens).logits, tokens),
                  save=partial(save_world_lm, facts), snapshot=snapshot_world_lm,
                  evaluate=evaluate_facts, smoke={**TINY, "d_mlp": 4 * TINY["d_model"]})
BACKCOPY_LM = Recipe("backcopy-lm", BACKCOPY_LM_CONFIG, build=partial(build_world_lm, backcopy),
                     batches=partial(world_batches, backcopy),
                     loss=lambda model, tokens: lm_loss(model(tokens).logits, tokens),
                     save=partial(save_world_lm, backcopy), evaluate=evaluate_backcopy,
                     smoke={**TINY, "d_mlp": 4 * TINY["d_model"]})
RECIPES = {r.name: r for r in (COURSE_LM, ATTN_ONLY_2L, IOI_LM, FACTS_LM, BACKCOPY_LM)}


if __name__ == "__main__":
    main(RECIPES, doc=__doc__)
