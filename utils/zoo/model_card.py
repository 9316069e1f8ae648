"""Measure every course model and write models/README.md (the model card), or print the numbers as JSON.

    python -m utils.zoo.model_card           # rewrite models/README.md
    python -m utils.zoo.model_card --json    # print the measurements instead
    python -m utils.zoo.model_card pointer-8 --json   # only some models

Language models (course-lm, attn-only-2l): held-out loss, per-head induction / previous-token scores on
[BOS] + r + r, attention sinks at full length (held-out text and random words, next to the uniform baseline, and
whether the sink belongs to BOS or to position 0), IOI, fact recall (plain and through a code
table), the causal-trace summary (course-lm) and the induction score across training checkpoints.
Pointer models: accuracy, flip test, attention from the readout to the addressed cell (per layer, head and
address), residual-patching recovery, and the spread of every figure over the recipe's seeds (models/*/seeds.json). Training times come from each models/*/training.json.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from utils import backcopy, corpus, facts, ioi, pointer, tracing
from utils.analysis import metrics
from utils.models import (MODELS_DIR, NATIVE_CONFIG, course_models, folder_checkpoints, list_checkpoints, load_folder,
                          load_model)

README = MODELS_DIR / "README.md"
SEED = 0
SINK_EPS = 0.3
HELD_OUT_CONTEXTS = 96  # full-length held-out contexts per measurement on text: a head near the 0.3 line of
# course-lm (1.2, 4.1) is in or out from one sample of 32 contexts to the next, so three samples' worth
ORDER = ["course-lm", "ioi-lm", "facts-lm", "attn-only-2l", "backcopy-lm", "pointer-8", "pointer-32"]  # card order; other models follow by name


def card_order(names: list[str]) -> list[str]:
    """Model names in the card's order (ORDER first, then the others by name)."""
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


# ---------------------------------------------------------------- measurements


def training_record(name: str) -> dict:
    """Steps and wall seconds from models/<name>/training.json (empty if absent)."""
    path = MODELS_DIR / name / "training.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    wall = record.get("wall_time_s", record.get("wall_seconds"))
    return {"steps": record.get("steps"), "wall_seconds": wall, "cpu_seconds": record.get("cpu_time_s"),
            "seed": record.get("config", {}).get("seed")}


def size(model) -> dict:
    """Architecture numbers and the underlying model's parameter count (tied weights count once)."""
    cfg = model.cfg
    params = sum(p.numel() for p in model.original_model.parameters())
    return {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model, "d_vocab": cfg.d_vocab,
            "n_ctx": cfg.n_ctx, "params": params}


def heads_at_least(weight: torch.Tensor, eps: float) -> dict:
    """The heads beyond layer 0 whose weight [layer, head] is at least eps, and their share of those heads."""
    heads = [(l, h) for l in range(1, len(weight)) for h in range(weight.shape[1]) if weight[l, h] >= eps]
    return {"share": len(heads) / (weight[1:].numel() or 1), "heads": heads}


def held_out_documents(name: str, n_ctx: int, seed: int = 10_000,
                       n: int = HELD_OUT_CONTEXTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-length held-out contexts of the document mix the language model `name` trained on (its recipe's
    doc_weights; other seeds than its training stream), and where their documents end: [n, n_ctx] twice."""
    from utils.zoo.train_lm import RECIPES  # the recipes import the models package; the card reads them lazily

    weights = dict(RECIPES[name].config.data["doc_weights"])
    return corpus.full_length_documents(n, n_ctx, seed, weights)


def sink_owner(model, text: torch.Tensor, heads: list[tuple[int, int]]) -> dict:
    """What a sink belongs to, on `text` [batch, pos] with BOS first: the share of sink heads beyond layer 0 with BOS
    dropped (a word at position 0), and the mean weight `heads` put on BOS moved to the middle and on the word left
    at position 0, beside a uniform head's weight on the moved BOS."""
    middle = text.shape[1] // 2
    moved = torch.cat([text[:, 1 : middle + 1], text[:, :1], text[:, middle + 1 :]], dim=1)  # BOS at `middle`
    pick = lambda a: sum(a[l, h].item() for l, h in heads) / max(1, len(heads))  # noqa: E731
    return {"no_bos_share": metrics.sink_report(model, text[:, 1:], SINK_EPS).share,
            "moved_bos": {"position": middle, "sink_heads_on_bos": pick(metrics.bos_sink_scores(model, moved, middle)),
                          "sink_heads_on_position_0": pick(metrics.bos_sink_scores(model, moved, 0)),
                          "uniform": metrics.uniform_key_attention(text.shape[1], middle)}}


def sink_writes(model, text: torch.Tensor, heads: list[tuple[int, int]]) -> dict:
    """Gu et al.'s other signature of a sink, on `text` [batch, pos] with BOS first: what the key at position 0 writes
    through each of `heads` (|v W_O|) over what an average later key writes, with BOS there ("bos") and with BOS
    dropped, so that a word is at position 0 ("word_at_0"); and the share of later keys that write less than
    position 0 (0 when position 0 writes the least of all)."""
    with_bos, without = (metrics.written_norms(model, t, heads) for t in (text, text[:, 1:]))  # {(l, h): [batch, key]}
    ratio = lambda n: (n[:, 0].mean() / n[:, 1:].mean()).item()  # noqa: E731
    below = lambda n: (n[:, 1:] < n[:, :1]).float().mean().item()  # noqa: E731
    return {kind: {f"{l}.{h}": {"ratio": ratio(norms[l, h]), "keys_below": below(norms[l, h])} for l, h in heads}
            for kind, norms in (("bos", with_bos), ("word_at_0", without))}


def sink_figures(model, text: torch.Tensor, ends: torch.Tensor, words: torch.Tensor | None = None) -> dict:
    """Sink heads at full length on held-out text and on random words, the uniform baseline at that length, where
    the heads rest on text instead (the ends and the starts of documents), and what the sink belongs to: BOS
    replaced by a word at position 0, and BOS moved to the middle. `text` [batch, pos] comes with `ends` [batch, pos]
    (bool: the last token of every whole document, as the generator packed them; a full stop can sit inside a
    document: `held_out_documents`). `words` defaults to 32 contexts of the course corpus's random words."""
    n_ctx = model.cfg.n_ctx
    words = corpus.random_word_contexts(32, n_ctx, seed=SEED) if words is None else words
    on_text, on_words = metrics.sink_report(model, text, SINK_EPS), metrics.sink_report(model, words, SINK_EPS)
    text_patterns = metrics.attention_patterns(model, text)  # [layer, batch, head, q, k]
    on_ends = [metrics.token_class_attention(p, ends) for p in text_patterns]
    on_starts = [metrics.document_start_attention(p, ends) for p in text_patterns]
    end_weight, start_weight = (torch.stack([w for w, _ in on]) for on in (on_ends, on_starts))  # [layer, head]
    later_queries = metrics.document_starts(ends) > 0  # [batch, query]: a document ended before the query
    bos_later = torch.stack([p[..., 0].transpose(0, 1)[:, later_queries].mean(-1) for p in text_patterns])  # [layer, head]
    return {"length": n_ctx, "uniform": on_text.uniform, "eps": SINK_EPS,
            "text": {"share": on_text.share, "heads": on_text.heads, "alpha": on_text.alpha.tolist()},
            "document_ends": {**heads_at_least(end_weight, SINK_EPS), "uniform": on_ends[0][1],
                              "weight": end_weight.tolist()},
            "document_start": {**heads_at_least(start_weight, SINK_EPS), "uniform": on_starts[0][1],
                               "weight": start_weight.tolist(),
                               "largest_on_bos_after_a_document": bos_later[1:].max().item()},
            "random_words": {"share": on_words.share, "heads": on_words.heads, "alpha": on_words.alpha.tolist()},
            **sink_owner(model, text, on_text.heads or on_words.heads)}  # the sink heads: on text, else on words


COURSE_LM_SINK_KEYS = ("text", "random_words", "document_ends", "document_start")


def resting_weight_moved(model, text: torch.Tensor, ends: torch.Tensor, heads: list[tuple[int, int]]) -> dict:
    """Change in held-out loss when `heads` move their weight on the current document's start (every query past
    the first document) to BOS, to the previous document's start, or to the current document's first word (a
    control: a key with content): the mean over contexts, and its standard error ("standard_error"). A sink's weight
    should move to another resting place for free. Also, per head, Gu et al.'s other signature of a sink: what the
    resting key writes through the head (|v W_O|, at the current document's start for every query past the first
    document) over what an average key writes ("value_at_rest"). text [batch, pos], ends [batch, pos] (bool,
    `held_out_documents`)."""
    start = metrics.document_starts(ends)  # [batch, query]
    later = start > 0  # [batch, query]: a document ended before the query
    query = torch.arange(text.shape[1]).expand_as(start)
    targets = {"to_bos": torch.zeros_like(start), "to_previous_start": start.gather(1, start),
               "to_first_word": torch.where(later, torch.minimum(start + 1, query), start)}
    base = metrics.context_losses(model, text)  # [batch]
    change = {name: metrics.moved_attention_losses(model, text, heads, start, target) - base
              for name, target in targets.items()}  # [batch] each
    norms = metrics.written_norms(model, text, [tuple(head) for head in heads])  # {(layer, head): [batch, key]}
    return {"heads": heads, "loss": base.mean().item(), **{name: c.mean().item() for name, c in change.items()},
            "standard_error": {name: (c.std() / len(c) ** 0.5).item() for name, c in change.items()},
            "value_at_rest": {f"{layer}.{head}": (n.gather(1, start)[later].mean() / n.mean()).item()
                              for (layer, head), n in norms.items()}}


def course_lm_seed_figures(model) -> dict:
    """course-lm's acceptance figures on one set of weights: held-out loss, induction and previous-token scores of
    every head, IOI on the training templates, fact recall, and the heads' resting places at full length."""
    repeated = corpus.repeated_random_tokens(batch=20, length=25, seed=SEED)
    text, ends = held_out_documents("course-lm", model.cfg.n_ctx)
    scores, sinks = metrics.head_scores(model, repeated), sink_figures(model, text, ends)
    return {"loss": metrics.mean_loss(model, text),
            "resting_weight_moved": resting_weight_moved(model, text, ends, sinks["document_start"]["heads"]),
            "induction": scores.induction.tolist(), "previous_token": scores.previous_token.tolist(),
            "ioi_top1": metrics.ioi_scores(model, corpus.ioi_prompts(200, seed=SEED)).top1,
            "fact_recall": metrics.fact_recall(model, corpus.fact_prompts(seed=SEED)),
            "sinks": {key: {k: v for k, v in sinks[key].items()
                            if k in ("share", "heads", "largest_on_bos_after_a_document")} for key in COURSE_LM_SINK_KEYS}}


def attn_only_seed_figures(folder: str | Path) -> dict:
    """attn-only-2l's figures on one run: induction and previous-token scores of every head, the repeated-token
    losses, and the best induction score at every training snapshot (the phase change)."""
    repeated = corpus.repeated_random_tokens(batch=20, length=25, seed=SEED)
    model = load_folder(folder)
    scores = metrics.head_scores(model, repeated)
    first, second = metrics.repeated_half_losses(model, repeated)
    return {"induction": scores.induction.tolist(), "previous_token": scores.previous_token.tolist(),
            "repeated_loss": {"first_half": first, "second_half": second},
            "checkpoint_induction": {step: metrics.head_scores(load_folder(folder, checkpoint=step), repeated)
                                     .induction.max().item() for step in folder_checkpoints(folder)}}


def recipe_runs(figures, folders: dict) -> dict:
    """figures(folder) of runs of a recipe (label -> folder of weights), with each run's wall time and CPU kind."""
    out = {}
    for label, folder in folders.items():
        record = json.loads((Path(folder) / "training.json").read_text())
        out[label] = {**figures(folder), "train_wall_s": record.get("wall_seconds", record.get("wall_time_s")),
                      "cpu_capability": record.get("cpu_capability")}
    return out


def course_lm_seeds(folders: dict[str, str]) -> dict:
    """course_lm_seed_figures of runs of the course-lm recipe (label -> folder of weights)."""
    return recipe_runs(lambda folder: course_lm_seed_figures(load_folder(folder)), folders)


def attn_only_seeds(folders: dict[str, str]) -> dict:
    """attn_only_seed_figures of runs of the attn-only-2l recipe (label -> folder of weights)."""
    return recipe_runs(attn_only_seed_figures, folders)


def measure_lm(name: str, model) -> dict:
    """Loss, head scores, IOI, fact recall, sinks at full length, checkpoints and (course-lm) the causal trace."""
    text, ends = held_out_documents(name, model.cfg.n_ctx)
    repeated = corpus.repeated_random_tokens(batch=20, length=25, seed=SEED)
    scores = metrics.head_scores(model, repeated)
    first, second = metrics.repeated_half_losses(model, repeated)
    ioi = metrics.ioi_scores(model, corpus.ioi_prompts(200, seed=SEED))
    out = {
        "loss": metrics.mean_loss(model, text),
        "loss_by_sample": [metrics.mean_loss(model, sample) for sample in text.split(32)],
        "repeated_loss": {"first_half": first, "second_half": second, "ratio": second / first},
        "induction": scores.induction.tolist(),
        "previous_token": scores.previous_token.tolist(),
        "sinks": sink_figures(model, text, ends),
        "ioi": {"top1": ioi.top1, "logit_diff": ioi.logit_diff},
        "fact_recall": {"train_clauses": metrics.fact_recall(model, corpus.fact_prompts(seed=SEED)),
                        "held_out_clause": metrics.fact_recall(model, corpus.fact_prompts(300, SEED, held_out=True)),
                        "code_lookup": metrics.fact_recall(model, corpus.lookup_prompts(300, SEED))},
    }
    if list_checkpoints(name):
        out["checkpoint_induction"] = checkpoint_induction(name, repeated)
    if name == "course-lm":
        out["causal_trace"] = trace_summary(model)
    return out


def checkpoint_induction(name: str, repeated: torch.Tensor) -> dict[int, float]:
    """Best induction score over heads at every training snapshot."""
    return {step: metrics.head_scores(load_model(name, checkpoint=step), repeated).induction.max().item()
            for step in list_checkpoints(name)}


def trace_summary(model, n_facts: int = 100, prompts: list | None = None, window: int = 3) -> dict:
    """Causal-trace summary over `n_facts` correctly recalled fact prompts (default: course-lm's), fresh noise
    per fact, 95 % CIs; MLP and attention outputs restored over a window of `window` blocks."""
    prompts = corpus.fact_prompts(seed=SEED) if prompts is None else prompts
    summary = tracing.summarize(model, prompts, n_facts=n_facts, window=window, progress=False)
    as_lists = lambda e: {"mean": e.mean.tolist(), "low": e.low.tolist(), "high": e.high.tolist()}  # noqa: E731
    return {"n_facts": summary.n_facts, "window": summary.window, "mean_low": summary.mean_low,
            "low_range": list(summary.low_range), "mean_high": summary.mean_high,
            "mlp_split": as_lists(summary.mlp_split),
            "by_class": {kind: {name: as_lists(e) for name, e in classes.items()}
                         for kind, classes in summary.by_class.items()}}


LEGIBLE_SPIKES = {"pointer-8": 7}  # a legible readout: some head >= 0.5 on the addressed cell on average, and
# a clean single-head spike (one head >= 0.5 on the cell, on that address's mean) for at least this many addresses
NEAR_UNIFORM = 0.1  # pointer-32: attention on the addressed cell below this is "near uniform" (uniform 1/37 = 0.027)
MOST_ADDRESSES = 2 / 3  # ... for "most addresses": at least this share of them, in every layer and head (the
# pointer-32 shipped before, whose layer-1 head 1 put 0.9-0.99 on the cell for addresses 0-15, has 0.56)


def pointer_figures(model, task: pointer.PointerTask, min_spikes: int | None = None) -> dict:
    """Every acceptance figure of a pointer model: accuracy, flip test, readout attention on the addressed cell
    (per layer, per head, per address; clean spikes; legibility), and the residual-patching recovery table."""
    flips = metrics.flip_test(model, task, n=600, seed=SEED)
    readout = metrics.pointer_readout(model, task, n=4000, seed=SEED)
    near = (readout.by_address < NEAR_UNIFORM).float().mean(0)  # [layer, head]: share of addresses near uniform
    patching = metrics.pointer_patching_recovery(model, task, n=200, seed=SEED)
    figures = {"accuracy": metrics.pointer_accuracy(model, task, seed=SEED),
               "flip_addressed": flips.addressed, "flip_other": flips.other,
               "uniform": readout.uniform, "readout_per_layer": readout.per_layer.tolist(),
               "readout_per_head": readout.per_head.tolist(), "best_head": readout.best,
               "spikes": readout.spike_count, "spike_addresses": readout.spikes.nonzero()[:, 0].tolist(),
               "near_uniform_share": near.tolist(), "min_near_uniform_share": near.min().item(),
               "recovery": patching.recovery.tolist(), "recovery_classes": patching.classes,
               "recovery_pairs": patching.pairs, "recovery_tried": patching.tried}
    if min_spikes is not None:
        figures["legible"] = readout.legible(min_spikes)
    return figures


def seeds_record(name: str) -> dict:
    """models/<name>/seeds.json: the figures of every trained seed of the recipe (empty if absent)."""
    path = MODELS_DIR / name / "seeds.json"
    return json.loads(path.read_text()) if path.exists() else {}


def measure_pointer(name: str, model) -> dict:
    """Loss, accuracy, flip test, readout attention, patching recovery; the spread over seeds from seeds.json."""
    task = pointer.task_for(name)
    return {"task": {"memory_bits": task.memory_bits, "address_bits": task.address_bits},
            "loss": metrics.pointer_loss(model, task),
            **pointer_figures(model, task, LEGIBLE_SPIKES.get(name)), "seeds": seeds_record(name)}


def ioi_head_effects(model, prompts: list[ioi.Prompt]) -> dict:
    """Per head: mean attention from the last position to IO, and the mean drop of logit(IO) - logit(S) when the
    head's output at the last position is replaced by its mean over prompts of the same length (mean ablation)."""
    groups: dict[int, list[ioi.Prompt]] = {}
    for p in prompts:
        groups.setdefault(len(model.to_str_tokens(p.text)), []).append(p)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    to_io, drop = torch.zeros(n_layers, n_heads), torch.zeros(n_layers, n_heads)

    def difference(logits: torch.Tensor, batch: list[ioi.Prompt]) -> torch.Tensor:
        io = torch.tensor([model.to_single_token(p.io) for p in batch])
        s = torch.tensor([model.to_single_token(p.s) for p in batch])
        return logits[:, -1].gather(-1, io[:, None])[:, 0] - logits[:, -1].gather(-1, s[:, None])[:, 0]

    clean_total = 0.0
    with torch.no_grad():
        for batch in groups.values():
            tokens = model.to_tokens([p.text for p in batch])
            logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
            clean = difference(logits, batch)
            clean_total += clean.sum().item()
            io_pos = torch.tensor([p.io_pos for p in batch])
            for layer in range(n_layers):
                to_io[layer] += cache["pattern", layer][torch.arange(len(batch)), :, -1, io_pos].sum(0)
                for head in range(n_heads):
                    def ablate(z, hook, head=head):  # [batch, pos, head, d_head]
                        z = z.clone()
                        z[:, -1, head] = z[:, -1, head].mean(0)
                        return z
                    ablated = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate)])
                    drop[layer, head] += (clean - difference(ablated, batch)).sum().item()
    n = len(prompts)
    return {"to_io": (to_io / n).tolist(), "ablation_drop": (drop / n).tolist(), "clean_logit_diff": clean_total / n}


def name_movers(effects: dict, min_attention: float = 0.3, min_drop: float = 0.1) -> list[tuple[int, int]]:
    """Heads that attend from the end to IO (>= min_attention) and whose mean ablation costs at least
    min_drop of the clean logit difference: name-mover-like by attention and by intervention."""
    bar = min_drop * effects["clean_logit_diff"]
    return [(l, h) for l, row in enumerate(effects["to_io"]) for h, a in enumerate(row)
            if a >= min_attention and effects["ablation_drop"][l][h] >= bar]


def measure_ioi_lm(model, n: int = 200) -> dict:
    """IOI by split (training structures and names, held-out structures, held-out names, both), the heads
    that carry it, held-out loss and sinks at full length on ioi-lm's own language."""
    n_ctx = model.cfg.n_ctx
    text, ends = ioi.full_length_documents(32, n_ctx, seed=10_000)
    rng, vocab = random.Random(SEED), ioi.vocabulary()
    words = torch.tensor([ioi.encode([ioi.BOS] + [rng.choice(vocab) for _ in range(n_ctx - 1)]) for _ in range(32)])
    return {"loss": metrics.mean_loss(model, text),
            "splits": {split: ioi.scores(model, ioi.prompts(n, split, seed=SEED)) for split in ioi.SPLITS},
            "heads": ioi_head_effects(model, ioi.prompts(96, "held-out both", seed=SEED + 1)),
            "sinks": sink_figures(model, text=text, ends=ends, words=words)}


def ioi_seeds(folders: dict[int, str]) -> dict:
    """The IOI figures of other seeds of the ioi-lm recipe (folders of weights trained with --seed)."""
    out = {}
    for seed, folder in folders.items():
        figures = measure_ioi_lm(load_folder(folder))
        out[seed] = {"splits": figures["splits"], "name_movers": name_movers(figures["heads"]),
                     "sink_share_text": figures["sinks"]["text"]["share"]}
    return out


def world_documents(world, n: int, n_ctx: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-length contexts of a world's training language (utils.facts), never random halves, and where their
    documents end: (token ids [n, n_ctx], ends [n, n_ctx] bool)."""
    rng = random.Random(seed)
    parts = [world.context_documents(rng, n_ctx, p_random=0.0) for _ in range(n)]
    return (torch.tensor([world.encode([w for part in row for w in part], n_ctx) for row in parts]),
            torch.stack([corpus.document_ends(row) for row in parts]))


def world_random_words(world, n: int, n_ctx: int, seed: int) -> torch.Tensor:
    """BOS then random words of a world's vocabulary, full length: [n, n_ctx]."""
    rng, words = random.Random(seed), world.vocabulary()
    return torch.tensor([world.encode([corpus.BOS] + [rng.choice(words) for _ in range(n_ctx - 1)]) for _ in range(n)])


def severed_summary(model, prompts: list, n_facts: int = 100, samples: int = 4, layers: tuple[int, ...] = (0, 1)) -> dict:
    """ROME's severing test (their Figure 3; tracing.severed_trace) over the first `n_facts` recalled prompts, fresh
    noise per fact: the last subject token's hidden state restored after each of `layers`, alone or with the later
    MLP / attention outputs at that token kept corrupted; and what keeping them corrupted loses, fact by fact. Means
    with 95 % intervals over facts."""
    noise_std = tracing.NOISE_SCALE * tracing.subject_embedding_std(model, sorted({p.subject for p in prompts}))
    correct = [p for p, ok in zip(prompts, tracing.recalled(model, prompts).tolist()) if ok][:n_facts]
    rows = torch.stack([tracing.severed_trace(model, p, noise_std, layers, samples, seed=SEED + 7919 * i)
                        for i, p in enumerate(correct)])  # [fact, condition, layer]
    as_lists = lambda e: {"mean": e.mean.tolist(), "low": e.low.tolist(), "high": e.high.tolist()}  # noqa: E731
    return {"n_facts": len(correct), "samples": samples, "layers": list(layers),
            "restored": {name: as_lists(tracing.estimate(list(rows[:, c]))) for c, name in enumerate(tracing.SEVERED)},
            "lost": {name: as_lists(tracing.estimate(list(rows[:, 0] - rows[:, c])))
                     for c, name in enumerate(tracing.SEVERED) if c}}


def mlp_sets(model, prompts: list, n_facts: int = 100, samples: int = 3) -> dict:
    """The MLP outputs at the last subject token restored in sets: block 0's alone, every later block's together (ROME
    restores several MLPs at once because each adds little), all of them, and each later one alone; over the first
    `n_facts` recalled prompts, fresh noise per fact. Recovered fractions, means with 95 % intervals over facts, and
    what block 0's MLP alone falls short of all of them, fact by fact ("all but block 0's")."""
    noise_std = tracing.NOISE_SCALE * tracing.subject_embedding_std(model, sorted({p.subject for p in prompts}))
    correct = [p for p, ok in zip(prompts, tracing.recalled(model, prompts).tolist()) if ok][:n_facts]
    n_layers = model.cfg.n_layers
    sets = {"block 0": (0,), "later blocks": tuple(range(1, n_layers)), "all blocks": tuple(range(n_layers)),
            **{f"block {layer}": (layer,) for layer in range(1, n_layers)}}
    rows = []
    for i, p in enumerate(correct):
        tokens, at = model.to_tokens(p.text)[0], p.subject_span[1] - 1
        sites = [("mlp", at, layers) for layers in sets.values()]
        scores, low, high = tracing.trace_sites(model, tokens, tuple(p.subject_span), tracing.word_token(model, p.answer),
                                                sites, noise_std, samples=samples, seed=SEED + 7919 * i)
        rows.append((scores - low) / (high - low))  # [set]
    rows = torch.stack(rows)  # [fact, set]
    as_dict = lambda e: {"mean": e.mean.item(), "low": e.low.item(), "high": e.high.item()}  # noqa: E731
    out = {name: as_dict(tracing.estimate(list(rows[:, [k]]))) for k, name in enumerate(sets)}
    out["all but block 0's"] = as_dict(tracing.estimate(list(rows[:, [2]] - rows[:, [0]])))
    return {"n_facts": len(correct), "samples": samples, "restored": out}


def measure_facts_lm(model, n: int = 300) -> dict:
    """facts-lm: recall on every split, against the most common value; the causal trace (window 1: each
    block's own MLP and attention); ROME's severing test; sinks at full length on the world's own text."""
    recall = {split: tracing.recalled(model, facts.prompts(n, split, seed=SEED)).float().mean().item()
              for split in facts.SPLITS}
    values = {r: [p.attributes[r] for p in facts.people()] for r in corpus.RELATIONS}
    common = {r: max(values[r].count(v) for v in set(values[r])) / len(values[r]) for r in values}
    text, ends = world_documents(facts, 32, model.cfg.n_ctx, seed=10_000)
    words = world_random_words(facts, 32, model.cfg.n_ctx, seed=SEED)
    return {"recall": recall, "most_common_share": common, "loss": metrics.mean_loss(model, text),
            "causal_trace": trace_summary(model, prompts=facts.prompts(400, "train phrasings", seed=SEED), window=1),
            "severed": severed_summary(model, facts.prompts(400, "train phrasings", seed=SEED)),
            "mlp_sets": mlp_sets(model, facts.prompts(400, "train phrasings", seed=SEED)),
            "sinks": sink_figures(model, text=text, ends=ends, words=words)}


def symmetric_replacement(model, prompts: list, n_facts: int = 100) -> dict:
    """Symmetric token replacement (Zhang & Nanda 2023) over the first `n_facts` recalled prompts: the subject
    swapped for another person's (facts.swapped_subject), the clean hidden state after each block restored at the
    last subject token or the last token; normalised logit difference (clean answer minus the other person's:
    0 = swapped run, 1 = clean run), mean over facts per layer."""
    correct = [p for p, ok in zip(prompts, tracing.recalled(model, prompts).tolist()) if ok][:n_facts]
    n_layers = model.cfg.n_layers
    fractions = torch.zeros(len(correct), 2, n_layers)  # [fact, (last subject, last token), layer]
    for i, prompt in enumerate(correct):
        other = facts.swapped_subject(prompt, seed=i)
        clean, swapped = model.to_tokens(prompt.text)[0], model.to_tokens(other.text)[0]
        positions = (prompt.subject_span[1] - 1, len(clean) - 1)
        sites = [(f"blocks.{layer}.hook_resid_post", pos) for pos in positions for layer in range(n_layers)]
        answer, wrong = tracing.word_token(model, prompt.answer), tracing.word_token(model, other.answer)
        with torch.no_grad():
            ends = model(torch.stack([clean, swapped]))[:, -1]  # [2, vocab]
        high, low = (ends[:, answer] - ends[:, wrong]).tolist()
        patched = tracing.patch_sites(model, clean, swapped, sites)  # [sites, vocab]
        fractions[i] = ((patched[:, answer] - patched[:, wrong] - low) / (high - low)).view(2, n_layers)
    mean = fractions.mean(0)
    return {"n_facts": len(correct), "last_subject": mean[0].tolist(), "last_token": mean[1].tolist()}


def facts_seed_figures(model, n: int = 300) -> dict:
    """The figures of one facts-lm seed: recall by split; the hidden-state, MLP and attention traces (window 1,
    100 facts, fresh noise per fact, the card's prompts); the MLPs at the last subject token restored in sets
    (mlp_sets); symmetric token replacement on the same facts."""
    prompts = facts.prompts(400, "train phrasings", seed=SEED)
    trace = trace_summary(model, prompts=prompts, window=1)
    by_class = trace["by_class"]
    return {"recall": {split: tracing.recalled(model, facts.prompts(n, split, seed=SEED)).float().mean().item()
                       for split in facts.SPLITS},
            "last_subject": by_class["resid"]["last subject"]["mean"], "last_token": by_class["resid"]["last"]["mean"],
            "mlp_last_subject": by_class["mlp"]["last subject"]["mean"],
            "attn_peak": max(by_class["attn"], key=lambda name: max(by_class["attn"][name]["mean"])),
            "mlp_sets": {name: e["mean"] for name, e in mlp_sets(model, prompts)["restored"].items()},
            "symmetric_replacement": symmetric_replacement(model, prompts)}


def backcopy_figures(model) -> dict:
    """backcopy-lm (utils.backcopy): held-out loss, copying accuracy, sink heads at full length on held-out contexts and
    on random words next to the uniform baseline, what every head puts on BOS where the language gives it a job (the
    copy positions) and elsewhere, and what the sink belongs to (BOS dropped, so that a word is at position 0; BOS
    moved to the middle)."""
    n_ctx = model.cfg.n_ctx
    text = backcopy.full_length_contexts(HELD_OUT_CONTEXTS, n_ctx, seed=10_000)  # [batch, pos]
    words = backcopy.random_word_contexts(32, n_ctx, seed=SEED)
    on_text, on_words = metrics.sink_report(model, text, SINK_EPS), metrics.sink_report(model, words, SINK_EPS)
    copy = backcopy.copy_positions(text)  # [batch, pos]: queries whose next word is a copy
    with torch.no_grad():
        predicted = model(text)[:, :-1].argmax(-1)  # [batch, pos - 1]
    on_bos = metrics.attention_patterns(model, text)[..., 0].transpose(1, 2)  # [layer, head, batch, query]
    elsewhere = ~copy & (torch.arange(n_ctx) > 0)  # [batch, pos]
    return {"loss": metrics.mean_loss(model, text), "length": n_ctx, "uniform": on_text.uniform, "eps": SINK_EPS,
            "copy_accuracy": (predicted == text[:, 1:])[copy[:, :-1]].float().mean().item(),
            "copy_share": copy[:, 1:].float().mean().item(),
            "text": {"share": on_text.share, "heads": on_text.heads, "alpha": on_text.alpha.tolist()},
            "random_words": {"share": on_words.share, "heads": on_words.heads, "alpha": on_words.alpha.tolist()},
            "bos_at_copy": on_bos[:, :, copy].mean(-1).tolist(), "bos_elsewhere": on_bos[:, :, elsewhere].mean(-1).tolist(),
            "writes": sink_writes(model, text, [tuple(head) for head in on_text.heads]),
            **sink_owner(model, text, on_text.heads)}


def backcopy_seeds(folders: dict[int, str]) -> dict:
    """backcopy_figures of every seed of the backcopy-lm recipe (folders of weights trained with --seed): the
    acceptance figures, without the per-head tables."""
    def figures(folder) -> dict:
        f = backcopy_figures(load_folder(folder))
        writes = {kind: [w["ratio"] for w in f["writes"][kind].values()] for kind in ("bos", "word_at_0")}
        return {"loss": f["loss"], "copy_accuracy": f["copy_accuracy"], "no_bos_share": f["no_bos_share"],
                **{k: {"share": f[k]["share"], "heads": f[k]["heads"]} for k in ("text", "random_words")},
                "bos_writes_at_most": max(writes["bos"]), "word_at_0_writes_at_least": min(writes["word_at_0"])}
    return recipe_runs(figures, folders)


def facts_seeds(folders: dict[int, str]) -> dict:
    """facts_seed_figures of every seed of the facts-lm recipe (folders of weights trained with --seed)."""
    return recipe_runs(lambda folder: facts_seed_figures(load_folder(folder)), folders)


def measure(name: str) -> dict:
    """Every measurement of one course model."""
    model = load_model(name)
    native = (MODELS_DIR / name / NATIVE_CONFIG).exists()
    out = {"format": "native" if native else "hf", **size(model),
           "training": training_record(name)}
    if name in pointer.TASKS:
        out.update(measure_pointer(name, model))
    elif name == "backcopy-lm":
        out.update(backcopy_figures(model), seeds=seeds_record(name))
    elif name in ("ioi-lm", "facts-lm"):
        out.update(measure_ioi_lm(model) if name == "ioi-lm" else measure_facts_lm(model))
        seeds = MODELS_DIR / name / "seeds.json"
        out["seeds"] = json.loads(seeds.read_text()) if seeds.exists() else {}
    else:
        out.update(measure_lm(name, model))
        if name in ("course-lm", "attn-only-2l"):
            out["seeds"] = seeds_record(name)
    return out


# ---------------------------------------------------------------- markdown


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def head_table(card: dict) -> list[str]:
    """One row per layer, one column per head: induction / previous-token / first-token (alpha_0) score."""
    scores, n_heads = (card["induction"], card["previous_token"], card["sinks"]["text"]["alpha"]), card["n_heads"]
    rows = [[str(layer)] + [" / ".join(fmt(score[layer][h], 2) for score in scores) for h in range(n_heads)]
            for layer in range(card["n_layers"])]
    return table(["layer"] + [f"head {h}" for h in range(n_heads)], rows)


def overview(cards: dict[str, dict]) -> list[str]:
    rows = []
    for name, c in cards.items():
        t = c["training"]
        rows.append([f"`{name}`", c["format"], f"{c['params']:,}", f"{c['n_layers']} × {c['n_heads']}",
                     str(c["d_model"]), str(c["n_ctx"]), str(t.get("steps", "–")), fmt(t.get("wall_seconds"), 0),
                     fmt(t.get("cpu_seconds"), 0), f"{c['loss']:.3g}"])
    return table(["model", "format", "params", "layers × heads", "d_model", "n_ctx", "train steps", "train wall s",
                  "train CPU s", "loss"], rows)


def zoo_timing_lines() -> list[str]:
    """The whole zoo trained end to end (`python -m utils.zoo.train_all`), from models/zoo_timing.json."""
    path = MODELS_DIR / "zoo_timing.json"
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    models = ", ".join(f"{run['model']} {run['wall_seconds'] / 60:.1f}" for run in record["models"])
    return [f"The whole zoo, trained end to end by `python -m utils.zoo.train_all --out DIR --jobs {record['jobs']}` on "
            f"{record['cpu_count']} cores ({', '.join(filter(None, [record.get('cpu_model'), record['cpu_capability']]))}, "
            f"{record['date']}): "
            f"**{record['wall_seconds'] / 60:.1f} minutes** of wall time, longest recipes first, one core each "
            f"(minutes per model: {models}). The shipped weights are that run's only where they were trained on the "
            "same machine: a recipe repeats bit for bit on one machine, but another machine's floating-point noise "
            "gives other weights (the CPU kind of each shipped run is in its training.json).", ""]


def heads_text(heads: list) -> str:
    return ", ".join(f"{l}.{h}" for l, h in heads) or "none"


def sink_lines(k: dict) -> list[str]:
    n_beyond = len(k["text"]["alpha"]) - 1
    total = n_beyond * len(k["text"]["alpha"][0])
    moved = k["moved_bos"]
    return [f"- Attention sinks (Gu et al.: a head with α₀ ≥ {k['eps']}, α₀ its mean attention to position 0 over "
            f"the queries) among the {total} heads beyond layer 0, on full-length contexts ({k['length']} tokens, "
            f"where a head attending uniformly has α₀ = {fmt(k['uniform'], 3)}): "
            f"{fmt(k['text']['share'], 2)} on held-out corpus text ({heads_text(k['text']['heads'])}), "
            f"{fmt(k['random_words']['share'], 2)} on random words ({heads_text(k['random_words']['heads'])}).",
            (f"- Where the heads rest on text instead: the share of heads beyond layer 0 with at least {k['eps']} of "
             f"their attention on the last tokens of documents (their full stops; full stops inside a document do "
             f"not count) is {fmt(k['document_ends']['share'], 2)} ({heads_text(k['document_ends']['heads'])}; a head "
             f"attending uniformly puts {fmt(k['document_ends']['uniform'], 2)} there)."),
            (f"- The start of the document being read (BOS in the first document, the full stop that ended the "
             f"previous document in the others): {fmt(k['document_start']['share'], 2)} of the heads beyond layer 0 "
             f"put at least {k['eps']} there ({heads_text(k['document_start']['heads'])}; a head attending uniformly "
             f"puts {fmt(k['document_start']['uniform'], 3)} on one key); once a document has ended, no head beyond "
             f"layer 0 puts more than {fmt(k['document_start']['largest_on_bos_after_a_document'], 2)} on BOS."),
            f"- What the sink belongs to, on the held-out text above (the sink heads: those on random words where "
            f"text has none): with BOS replaced by an ordinary word at position 0 the share is "
            f"{fmt(k['no_bos_share'], 2)}; with BOS moved to position {moved['position']}, the sink heads put "
            f"{fmt(moved['sink_heads_on_bos'], 2)} on BOS there (uniform {fmt(moved['uniform'], 3)}) and "
            f"{fmt(moved['sink_heads_on_position_0'], 2)} on the word at position 0."]


def lm_section(name: str, c: dict) -> list[str]:
    from utils.zoo.train_lm import RECIPES  # the recipes import the models package; the card reads them lazily

    r, ioi, facts = c["repeated_loss"], c["ioi"], c["fact_recall"]
    p_random = RECIPES[name].config.data["p_random"]
    lines = [f"## `{name}`", "",
             f"- Training contexts: {p_random:.0%} are random words repeated ([BOS] + r + r), the rest documents of "
             f"the course corpus packed after BOS (utils.zoo.train_lm).",
             f"- Held-out loss {fmt(c['loss'])} on {32 * len(c['loss_by_sample'])} full-length contexts of the "
             f"document mix the model trained on (by sample of 32: "
             f"{', '.join(fmt(x) for x in c['loss_by_sample'])}). Repeated random tokens [BOS]+r+r "
             f"(|r| = 25): loss {fmt(r['first_half'])} on the first copy, {fmt(r['second_half'])} on the second "
             f"(ratio {fmt(r['ratio'], 2)}).",
             f"- IOI (200 prompts of the training templates): top-1 {fmt(ioi['top1'])}, mean logit(IO) − logit(S) "
             f"{fmt(ioi['logit_diff'], 2)}.",
             f"- Fact recall top-1: {fmt(facts['train_clauses'])} (900 prompts), "
             f"{fmt(facts['held_out_clause'])} with a clause never seen in training (300); "
             f"{fmt(facts['code_lookup'])} answering with the attribute's code from a table in the context (300)."]
    lines += sink_lines(c["sinks"]) + ["", "Per head: induction / previous-token / first-token (α₀ on held-out "
                                           "text, full length) score.", ""]
    lines += head_table(c)
    if c.get("seeds"):
        lines += [""] + (course_lm_seed_lines if name == "course-lm" else attn_only_seed_lines)(c["seeds"])
    if "checkpoint_induction" in c:
        steps = c["checkpoint_induction"]
        lines += ["", "Best induction score over heads, by training step:", ""]
        lines += table([str(s) for s in steps], [[fmt(v, 2) for v in steps.values()]])
    if "causal_trace" in c:
        lines += [""] + trace_section(c["causal_trace"])
    return lines + [""]


def course_lm_seed_lines(record: dict) -> list[str]:
    """The course-lm recipe's runs (seeds.json "seeds", and "retrains" of a seed on another CPU), with each bar
    counted over the runs."""
    runs = seed_runs(record)
    bars = {"two induction heads ≥ 0.7": lambda f: sum(x >= 0.7 for x in flat_scores(f["induction"])) >= 2,
            "a previous-token head ≥ 0.7": lambda f: max(flat_scores(f["previous_token"])) >= 0.7,
            "IOI top-1 ≥ 0.95": lambda f: f["ioi_top1"] >= 0.95, "fact recall ≥ 0.95": lambda f: f["fact_recall"] >= 0.95,
            "sinks on random words ≥ 0.25": lambda f: f["sinks"]["random_words"]["share"] >= 0.25,
            "sinks on text ≥ 0.25": lambda f: f["sinks"]["text"]["share"] >= 0.25,
            "heads on the document's start ≥ 0.25": lambda f: f["sinks"]["document_start"]["share"] >= 0.25}
    on_text = ("sinks on text ≥ 0.25", "heads on the document's start ≥ 0.25")  # bars measured on held-out text
    header = ["run", "held-out loss", "induction heads ≥ 0.7 (best)", "best previous-token head", "IOI top-1",
              "fact recall", "sink heads, random words", "sink heads, text", "heads on the document's start",
              "training wall time (s)"]
    induction = {label: flat_scores(f["induction"]) for label, f in runs.items()}
    sink_cell = lambda f, key: (f"{fmt(f['sinks'][key]['share'], 2)} ({heads_text(f['sinks'][key]['heads'])})"  # noqa: E731
                                if key in f["sinks"] else "–")
    rows = [[label, fmt(f.get("loss")), f"{sum(x >= 0.7 for x in induction[label])} ({fmt(max(induction[label]), 2)})",
             fmt(max(flat_scores(f["previous_token"])), 2), fmt(f["ioi_top1"], 2), fmt(f["fact_recall"], 2)]
            + [sink_cell(f, key) for key in ("random_words", "text", "document_start")] + [wall_time(f)]
            for label, f in runs.items()]
    counts = []
    for bar, test in bars.items():
        measured = [f for f in runs.values() if bar not in on_text or "text" in f["sinks"]]
        counts.append(f"{bar} on {sum(test(f) for f in measured)}" + ("" if len(measured) == len(runs)
                                                                        else f" of {len(measured)}"))
    return ([f"Runs of the recipe ({len(runs)}), measured by utils.zoo.model_card.course_lm_seed_figures (the "
             "protocol of the figures above; – where a run was not measured on text, its note says why):", ""]
            + table(header, rows)
            + ["", f"Bars, run by run (of {len(runs)}): {'; '.join(counts)}.", "", resting_weight_line(runs), "",
               record.get("note", "")] + not_measured_lines(runs))


def not_measured_lines(runs: dict) -> list[str]:
    """Why some runs have no figures on text, one line per reason with the runs it covers."""
    by_reason: dict[str, list[str]] = {}
    for label, f in runs.items():
        if "not_measured" in f:
            by_reason.setdefault(f["not_measured"], []).append(label)
    return ["", *(f"{', '.join(labels)}: {reason}" for reason, labels in by_reason.items())] if by_reason else []


def resting_weight_line(runs: dict) -> str:
    """What moving the document-start heads' resting weight costs, run by run (`resting_weight_moved`)."""
    moved = {label: f["resting_weight_moved"] for label, f in runs.items() if "resting_weight_moved" in f}
    if not moved:
        return ""
    span = lambda key: f"{fmt(min(m[key] for m in moved.values()), 3)} to {fmt(max(m[key] for m in moved.values()), 3)}"  # noqa: E731
    control = ", ".join(f"{fmt(m['to_first_word'], 3)} ± {fmt(m['standard_error']['to_first_word'], 3)} ({label})"
                        for label, m in moved.items())
    largest_error = max(max(m["standard_error"][key] for key in ("to_bos", "to_previous_start")) for m in moved.values())
    return (f"Is the weight on the document's start a sink's, free to rest anywhere empty? On each of {len(moved)} runs "
            "its heads on the document's start had that weight moved, for every query past the first document "
            "(utils.zoo.model_card.resting_weight_moved, the held-out contexts above): held-out loss changes by "
            f"{span('to_bos')} nats when it goes to BOS and {span('to_previous_start')} when it goes to the previous "
            f"document's start (standard errors over contexts at most {fmt(largest_error, 3)}), against {control} when "
            "it goes to the current document's first word (the control: a key with content)."
            + value_at_rest_sentence(moved))


def value_at_rest_sentence(moved: dict) -> str:
    """Gu et al.'s other signature of a sink, run by run: what the resting key writes through each head on the
    document's start, over what an average key writes (`resting_weight_moved`'s "value_at_rest")."""
    ratios = {(label, head): r for label, m in moved.items() for head, r in m.get("value_at_rest", {}).items()}
    if not ratios:
        return ""
    small = [r for r in ratios.values() if r < 1]
    large = ", ".join(f"{head} ({label}: {fmt(r, 2)})" for (label, head), r in ratios.items() if r >= 1)
    span = f" ({fmt(min(small), 2)} to {fmt(max(small), 2)})" if small else ""
    rest = (f", and 1 or more for {large}: by this signature those heads read the document's start rather than "
            "rest on it.") if large else "."
    return (" The other signature of a sink (Gu et al. 2024), a resting key that writes little: |v W_O| at the "
            f"document's start over its mean over all keys is below 1 for {len(small)} of these {len(ratios)} heads"
            + span + rest)


def flat_scores(scores: list[list[float]]) -> list[float]:
    """A [layer][head] table of scores, flattened."""
    return [x for row in scores for x in row]


def wall_time(run: dict) -> str:
    return fmt(run["train_wall_s"], 0) if run.get("train_wall_s") is not None else "–"


def seed_runs(record: dict) -> dict:
    """seeds.json's runs by label: "seed N" (marked when shipped), then any "retrains" (a seed on another CPU)."""
    return {**{f"seed {s}" + (" (shipped)" if int(s) == record.get("committed") else ""): f
               for s, f in record.get("seeds", {}).items()}, **record.get("retrains", {})}


def phase_change_step(curve: dict, bar: float = 0.5) -> int | None:
    """The first snapshot step at which the best induction score reaches `bar` (None if it never does)."""
    return next((int(step) for step, score in sorted(curve.items(), key=lambda kv: int(kv[0])) if score >= bar), None)


def attn_only_seed_lines(record: dict) -> list[str]:
    """The attn-only-2l recipe's runs: induction, previous-token, repeated-token losses and the phase change."""
    runs = seed_runs(record)
    header = ["run", "best induction head", "best previous-token head", "loss, first / second copy",
              "first snapshot with induction ≥ 0.5", "best induction at the first / last snapshot", "training wall time (s)"]
    rows = []
    for label, f in runs.items():
        curve = {int(k): v for k, v in f["checkpoint_induction"].items()}
        loss = f["repeated_loss"]
        rows.append([label, fmt(max(flat_scores(f["induction"])), 2), fmt(max(flat_scores(f["previous_token"])), 2),
                     f"{fmt(loss['first_half'], 2)} / {fmt(loss['second_half'], 2)}",
                     str(phase_change_step(curve) or "never"),
                     f"{fmt(curve[min(curve)], 2)} / {fmt(curve[max(curve)], 2)}",
                     wall_time(f)])
    steps = [phase_change_step({int(k): v for k, v in f["checkpoint_induction"].items()}) for f in runs.values()]
    known = [s for s in steps if s is not None]
    return ([f"Runs of the recipe ({len(runs)}), measured by utils.zoo.model_card.attn_only_seed_figures:", ""]
            + table(header, rows)
            + ["", f"An induction head ≥ 0.8 on {sum(max(flat_scores(f['induction'])) >= 0.8 for f in runs.values())} of "
               f"{len(runs)} runs; the phase change (best induction first ≥ 0.5) at steps "
               f"{min(known) if known else '–'}–{max(known) if known else '–'}.", "", record.get("note", "")])


def facts_section(name: str, c: dict) -> list[str]:
    """facts-lm: recall by split against the most common value, the trace (window 1), the seeds, sinks."""
    common = ", ".join(f"{r} {fmt(v, 2)}" for r, v in c["most_common_share"].items())
    lines = [f"## `{name}`", "",
             f"People named by a clan and a given name ({facts.N_CLANS} clans × {facts.N_GIVEN} given names: "
             f"{facts.N_CLANS * facts.N_GIVEN} people, so no single token identifies anyone) with a country, a "
             "profession and a language fixed by the country (utils/facts.py); built for notebook 05's causal "
             "tracing. Training starts with registry entries alone (any attribute may follow the name), then adds "
             "fact sentences, most of which name another person in a clause between the subject and the relation: "
             "the recipe is designed to give the model a reason to hold a person's attributes at the last subject "
             "token (ROME's early site) and to find the subject by its place; whether it does is measured below, on "
             "every seed. The model has Pythia's layout (GPT-NeoX: a block's attention and MLP read the same input; "
             "rotary positions, untied embeddings): block 0's MLP sees one token, so it cannot combine the clan with the "
             "given name, as a GPT-2 block 0 (attention, then MLP) did in the sequential facts-lm shipped until "
             "2026-12-06, whose early site was that one MLP.", "",
             f"- Held-out loss on the world's own text {fmt(c['loss'])} (full-length contexts).",
             "- Recall top-1 (300 prompts each): " + "; ".join(f"{split} {fmt(v, 2)}" for split, v in c["recall"].items())
             + f" (the most common value of a relation: {common}).", ""]
    lines += trace_section(c["causal_trace"]) + [""] + mlp_set_lines(c["mlp_sets"]) + [""] + severed_lines(c["severed"]) + [""]
    record = c.get("seeds", {})
    seeds = record.get("seeds", {})
    if seeds:
        n_layers = len(next(iter(seeds.values()))["last_subject"])
        first_half = n_layers // 2
        header = (["seed"] + [f"recall, {split}" for split in facts.SPLITS]
                  + ["last subject, best of blocks 0-" + str(first_half - 1), "MLP 0 at the last subject",
                     "best later MLP there", "later MLPs together", "all MLPs", "last token, best before the last block",
                     "attention trace peaks at",
                     "STR: last subject, best of blocks 0-" + str(first_half - 1),
                     "STR: last token, best before the last block",
                     "training wall time (s)"])
        figures = {s: {"early": max(f["last_subject"][:first_half]), "mlp0": f["mlp_last_subject"][0],
                       "mlp_later": max(f["mlp_last_subject"][1:]), "late": max(f["last_token"][:-1]),
                       "mlps_later": f["mlp_sets"]["later blocks"], "mlps_all": f["mlp_sets"]["all blocks"],
                       "mlps_short": f["mlp_sets"]["all but block 0's"],
                       "str_early": max(f["symmetric_replacement"]["last_subject"][:first_half]),
                       "str_late": max(f["symmetric_replacement"]["last_token"][:-1])} for s, f in seeds.items()}
        rows = [[s + (" (shipped)" if int(s) == record.get("committed") else "")]
                + [fmt(f["recall"][split], 2) for split in facts.SPLITS]
                + [fmt(figures[s][k], 2) for k in ("early", "mlp0", "mlp_later", "mlps_later", "mlps_all", "late")]
                + [f["attn_peak"] + " token"]
                + [fmt(figures[s][k], 2) for k in ("str_early", "str_late")] + [f"{f['train_wall_s']:.0f}"]
                for s, f in seeds.items()]
        count = lambda key, bar: sum(f[key] >= bar for f in figures.values())  # noqa: E731
        lines += [f"Every seed of the recipe ({len(seeds)}): the hidden-state and MLP traces (noise as above, 10 samples "
                  "per fact, window 1, 100 facts) and symmetric token replacement (STR: the subject swapped for another "
                  "person's, the clean state restored, normalised logit difference, the same 100 facts):", ""]
        lines += table(header, rows) + [
            "", f"Issue 11's bars, seed by seed: the late site (last token ≥ 0.7 before the last block) on "
            f"{count('late', 0.7)} of {len(seeds)} seeds; the early site's size (last subject token ≥ 0.5 in the first "
            f"half) on {count('early', 0.5)}; the MLPs after layer 0, restored together at the last subject token, "
            f"recovering ≥ 0.1 on {count('mlps_later', 0.1)}, and MLP 0 alone falling ≥ 0.1 short of all the MLPs on "
            f"{count('mlps_short', 0.1)} (one later MLP alone ≥ 0.1 on {count('mlp_later', 0.1)}); the attention "
            f"trace peaking at the last token on "
            f"{sum(f['attn_peak'] == 'last' for f in seeds.values())}. Under STR the last subject token carries "
            f"≥ 0.9 of the logit difference in the first half on {count('str_early', 0.9)} seeds.",
            "", record.get("note", ""), ""]
    return lines + sink_lines(c["sinks"]) + [""]


def mlp_set_lines(t: dict) -> list[str]:
    """The MLPs at the last subject token restored in sets, as measured by mlp_sets."""
    r = t["restored"]
    at = lambda name: f"{fmt(r[name]['mean'], 2)} [{fmt(r[name]['low'], 2)}, {fmt(r[name]['high'], 2)}]"  # noqa: E731
    singles = "; ".join(f"{name} {at(name)}" for name in r if name.startswith("block ") and name != "block 0")
    short = at("all but block 0's")
    return [f"The MLP outputs at the last subject token restored in sets ({t['n_facts']} recalled facts, {t['samples']} "
            f"fresh noise draws each; recovered fraction, mean [95 % interval]): block 0's alone {at('block 0')}; every "
            f"later block's together {at('later blocks')}; all of them {at('all blocks')}, which block 0's alone falls "
            f"short of by {short} fact by fact; each later one alone: {singles}."]


def severed_lines(t: dict) -> list[str]:
    """ROME's severing test, as measured by severed_summary."""
    restored, lost = t["restored"], t["lost"]
    at = lambda e, i: f"{fmt(e['mean'][i], 2)} [{fmt(e['low'][i], 2)}, {fmt(e['high'][i], 2)}]"  # noqa: E731
    return [f"ROME's severing test (their Figure 3) on {t['n_facts']} recalled facts, {t['samples']} fresh noise draws each: "
            "the last subject token's hidden state restored after block " + "; after block ".join(
                f"{layer} recovers {at(restored['none'], i)}, with the MLP outputs at that token in every later block kept "
                f"corrupted {at(restored['later MLPs'], i)} (lost, fact by fact: {at(lost['later MLPs'], i)}), with the "
                f"later attention outputs kept corrupted instead {at(restored['later attention'], i)} (lost "
                f"{at(lost['later attention'], i)})" for i, layer in enumerate(t["layers"]))
            + ". Restoring one later MLP alone (the table above) asks whether it is sufficient; severing them asks whether "
              "the restored state acts through them."]


def ioi_section(name: str, c: dict) -> list[str]:
    """ioi-lm: IOI by split with the ABC counterfactual, the seeds, the heads that carry it, sinks."""
    splits, heads = c["splits"], c["heads"]
    lines = [f"## `{name}`", "",
             f"IOI sentences built from parts (`utils/ioi.py`): {len(ioi.TRAIN_FAMILIES)} structural families in "
             f"training, {len(ioi.HELD_OUT_FAMILIES)} held out (combinations of seen parts never seen together), "
             f"{len(ioi.TRAIN_NAMES)} names in training IOI sentences and {len(ioi.HELD_OUT_NAMES)} held out of them "
             "(they occur only in other sentences). Top-1: IO is the argmax over the whole vocabulary; ABC: the "
             "same prompts with every later mention of S replaced by a third name C, where the logit difference "
             "should collapse. 200 prompts per split, both name orders.",
             "", f"- Held-out loss {fmt(c['loss'])} (full-length contexts of ioi-lm's language).", ""]
    lines += table(["split", "top-1", "logit(IO) − logit(S)", "ABC: logit(IO) − logit(S)"],
                   [[split, fmt(v["top1"]), fmt(v["logit_diff"], 2), fmt(v["abc_logit_diff"], 2)] for split, v in splits.items()])
    if c.get("seeds"):
        seeds = c["seeds"]
        lines += ["", f"Seeds of the recipe (the shipped weights are seed {c['training']['seed']}: held-out names and a "
                      "name-mover head by the rule below are seed-dependent, and the shipped seed has both without being "
                      "the best by held-out-name top-1):", ""]
        lines += table(["seed"] + list(ioi.SPLITS) + ["name-mover-like heads", "sink share (text)"],
                       [[str(seed)] + [fmt(r["splits"][split]["top1"]) for split in ioi.SPLITS]
                        + [heads_text(r["name_movers"]), fmt(r["sink_share_text"], 2)] for seed, r in seeds.items()])
    movers = name_movers(heads)
    lines += ["", f"Heads on 96 prompts of held-out structures and names (clean logit difference "
                  f"{fmt(heads['clean_logit_diff'], 2)}): attention from the last position to IO / drop of the logit "
                  "difference when the head's output there is mean-ablated. Name-mover-like (attention ≥ 0.3 and a "
                  f"drop ≥ 10 % of the clean difference): {heads_text(movers)}.", ""]
    lines += table(["layer"] + [f"head {h}" for h in range(c["n_heads"])],
                   [[str(l)] + [f"{fmt(a, 2)} / {fmt(d, 2)}" for a, d in zip(heads["to_io"][l], heads["ablation_drop"][l])]
                    for l in range(c["n_layers"])])
    return lines + [""] + sink_lines(c["sinks"]) + [""]


def backcopy_section(name: str, c: dict) -> list[str]:
    """backcopy-lm: copying, the sinks at full length with their baseline, where the heads have their job, the seeds."""
    text, words, moved = c["text"], c["random_words"], c["moved_bos"]
    total = (len(text["alpha"]) - 1) * len(text["alpha"][0])
    lines = [f"## `{name}`", "",
             "Notebook 01's sinks on a model's own text. Its language (`utils/backcopy.py`, after Guo et al. 2024's "
             "Bigram-Backcopy task): a bigram chain over ordinary words that never repeats a word of the context, in "
             "which the trigger words `again` and `first` ask, one word later, for the word before the trigger or the "
             "context's first word to be copied. Only "
             f"the queries right after a trigger's next word need the copy ({fmt(c['copy_share'], 2)} of the "
             "positions): a job that a head beyond layer 0 has now and then. One context is BOS and one chain of "
             f"{c['length'] - 1} words; held-out contexts come from other seeds than training.", "",
             f"- Held-out loss {fmt(c['loss'])}; the copy is predicted (top-1) at {fmt(c['copy_accuracy'])} of the copy "
             f"positions of {HELD_OUT_CONTEXTS} held-out contexts.",
             f"- Attention sinks (α₀ ≥ {c['eps']}) among the {total} heads beyond layer 0 at full length "
             f"({c['length']} tokens, where a head attending uniformly has α₀ = {fmt(c['uniform'], 3)}): "
             f"{fmt(text['share'], 2)} on held-out contexts ({heads_text(text['heads'])}), {fmt(words['share'], 2)} on "
             f"random words of its vocabulary ({heads_text(words['heads'])}).",
             "- Where they rest and where they work: the weight each sink head puts on BOS from the copy positions / "
             "from every other query: " + "; ".join(
                 f"{l}.{h} {fmt(c['bos_at_copy'][l][h], 2)} / {fmt(c['bos_elsewhere'][l][h], 2)}" for l, h in text["heads"])
             + ". Those under 0.1 at the copy positions are Guo et al.'s active-dormant heads: working after a "
             "trigger, resting on BOS everywhere else.",
             f"- What the sink belongs to: with BOS dropped (a word at position 0) the share of sink heads is "
             f"{fmt(c['no_bos_share'], 2)}; with BOS moved to position {moved['position']}, the sink heads put "
             f"{fmt(moved['sink_heads_on_bos'], 2)} on it there (uniform {fmt(moved['uniform'], 3)}) and "
             f"{fmt(moved['sink_heads_on_position_0'], 2)} on the word at position 0.",
             "- What a resting head takes from the sink (Gu et al.'s small value): what position 0 writes through each "
             "sink head (|v W_O|) over an average later key, with BOS there / with a word there: " + "; ".join(
                 f"{head} {fmt(bos['ratio'], 2)} / {fmt(c['writes']['word_at_0'][head]['ratio'], 2)}"
                 for head, bos in c["writes"]["bos"].items())
             + f". Later keys writing less than BOS: at most {fmt(max(w['keys_below'] for w in c['writes']['bos'].values()), 3)} "
             "of them, through any sink head."]
    seeds = (c.get("seeds") or {}).get("seeds", {})  # seeds.json: {"committed": seed, "seeds": {seed: figures}}
    if seeds:
        shares = {k: [r[k]["share"] for r in seeds.values()] for k in ("text", "random_words")}
        lines += ["", f"Seeds of the recipe (shipped: seed {c['training']['seed']}, the recipe's default). Share of sink "
                      f"heads on held-out contexts {fmt(min(shares['text']), 2)}-{fmt(max(shares['text']), 2)}, on random "
                      f"words {fmt(min(shares['random_words']), 2)}-{fmt(max(shares['random_words']), 2)}:", ""]
        lines += table(["seed", "held-out loss", "copy top-1", "sinks on held-out contexts", "sinks on random words",
                        "without BOS", "BOS writes (largest)", "a word at 0 writes (smallest)", "train wall s"],
                       [[str(seed), fmt(r["loss"]), fmt(r["copy_accuracy"]),
                         f"{fmt(r['text']['share'], 2)} ({heads_text(r['text']['heads'])})",
                         f"{fmt(r['random_words']['share'], 2)} ({heads_text(r['random_words']['heads'])})",
                         fmt(r["no_bos_share"], 2), fmt(r.get("bos_writes_at_most"), 2),
                         fmt(r.get("word_at_0_writes_at_least"), 2), fmt(r["train_wall_s"], 0)]
                        for seed, r in seeds.items()])
    lines += ["", "α₀ per head on held-out contexts:", ""]
    lines += table(["layer"] + [f"head {h}" for h in range(c["n_heads"])],
                   [[str(l)] + [fmt(a, 2) for a in row] for l, row in enumerate(text["alpha"])])
    return lines + [""]


def ci(e: dict, layer: int) -> str:
    return f"{fmt(e['mean'][layer], 2)} [{fmt(e['low'][layer], 2)}, {fmt(e['high'][layer], 2)}]"


def trace_section(t: dict) -> list[str]:
    lo, hi = t["low_range"]
    lines = [f"Causal trace (ROME: noise 3 × the subject-embedding std on the subject tokens, 10 samples, fresh "
             f"noise for each fact) over {t['n_facts']} recalled facts: mean p(answer) clean {fmt(t['mean_high'])}, "
             f"corrupted {fmt(t['mean_low'])} (per fact {fmt(lo)} to {fmt(hi)}). Mean recovered fraction "
             "(score − low) / (high − low), with its 95 % confidence interval over facts, restoring the residual "
             f"stream after block L (resid), or the MLP or attention outputs of a window of {t['window']} blocks "
             "centred on L, at each of ROME's token classes:", ""]
    by_class = t["by_class"]
    n_layers = len(by_class["resid"]["last"]["mean"])
    rows = [[f"{kind}, {name}"] + [ci(e, layer) for layer in range(n_layers)]
            for kind, classes in by_class.items() for name, e in classes.items()]
    lines += table(["restored, token class"] + [f"L = {layer}" for layer in range(n_layers)], rows)
    split = t["mlp_split"]
    later = tracing.mlp_split_layers(n_layers)[1]
    others = f"the MLP of layer {later[0]}" if len(later) == 1 else f"the MLPs of layers {later[0]} to {later[-1]} together"
    lines += ["", f"MLP restoration at the last subject token: the MLP of layer 0 alone recovers {ci(split, 0)}, "
              f"{others} {ci(split, 1)}."]
    return lines


SPREAD = [("accuracy", "accuracy", 4), ("flip_addressed", "flip: addressed cell", 3),
          ("flip_other", "flip: other cell", 3), ("best_head", "best head on the addressed cell", 2),
          ("spikes", "addresses with a clean spike", 0), ("min_near_uniform_share", "min share near uniform", 2)]


def spread(values: list[float]) -> tuple[float, float, float]:
    """Min, median (lower middle for an even count), max."""
    ordered = sorted(values)
    return ordered[0], ordered[(len(ordered) - 1) // 2], ordered[-1]


def seeds_table(c: dict) -> list[str]:
    """Every seed's acceptance figures, and their min / median / max."""
    record = c["seeds"]
    seeds = record.get("seeds", {})
    if not seeds:
        return []
    n_layers = len(c["readout_per_layer"])
    columns = [("accuracy", 4), ("flip_addressed", 3), ("flip_other", 3)]
    header = ["seed", "accuracy", "flip addressed", "flip other"] + [f"readout L{l}" for l in range(n_layers)]
    header += ["best head", "clean spikes", "min near-uniform share", "recovery after L0, addressed cell"]
    if "legible" in c:
        header.append("legible")
    header.append("train wall s")

    def row(label: str, f: dict) -> list[str]:
        cells = [label] + [fmt(f[k], d) for k, d in columns] + [fmt(a, 3) for a in f["readout_per_layer"]]
        cells += [fmt(f["best_head"], 2), f"{f['spikes']}/{c['task']['memory_bits']}",
                  fmt(f["min_near_uniform_share"], 2), fmt(f["recovery"][1][0], 2)]
        if "legible" in c:
            cells.append("yes" if f["legible"] else "no")
        return cells + [fmt(f.get("train_wall_s"), 0)]

    rows = [row(("**" + s + "** (committed)") if s == str(record.get("committed")) else s, f)
            for s, f in seeds.items()]
    lines = [f"Every seed of the recipe trained so far ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}):", ""]
    lines += table(header, rows) + ["", "Spread over the seeds (min / median / max):", ""]
    spreads = [[label, " / ".join(fmt(v, d) for v in spread([f[key] for f in seeds.values()]))]
               for key, label, d in SPREAD]
    for layer in range(n_layers):
        spreads.append([f"readout layer {layer} (uniform {fmt(c['uniform'], 3)})",
                        " / ".join(fmt(v, 3) for v in spread([f["readout_per_layer"][layer] for f in seeds.values()]))])
    spreads.append(["recovery after layer 0, addressed cell",
                    " / ".join(fmt(v, 2) for v in spread([f["recovery"][1][0] for f in seeds.values()]))])
    if "legible" in c:
        legible = sum(f["legible"] for f in seeds.values())
        spreads.append(["legible seeds", f"{legible} of {len(seeds)}"])
    else:
        near = sum(f["min_near_uniform_share"] >= MOST_ADDRESSES for f in seeds.values())
        spreads.append([f"seeds near uniform (< {NEAR_UNIFORM}) on ≥ {fmt(MOST_ADDRESSES, 2)} of the addresses in "
                        "every layer and head", f"{near} of {len(seeds)}"])
    return lines + table(["figure", "min / median / max"], spreads) + [""] + variants_table(record)


def variants_table(record: dict) -> list[str]:
    """Recipe changes tried (seeds.json "variants"): each seed's best head, clean spikes and legibility."""
    variants = record.get("variants", {})
    if not variants:
        return []
    rows = [[v["change"], s, fmt(f["accuracy"], 4), fmt(f["best_head"], 2), str(f["spikes"]),
             "yes" if f.get("legible") else "no"] for v in variants.values() for s, f in v["seeds"].items()]
    legible = sum(bool(r[-1] == "yes") for r in rows)
    lines = [f"Recipe changes tried ({legible} of {len(rows)} runs legible; {record.get('variants_note', '')}):", ""]
    return lines + table(["change", "seed", "accuracy", "best head on the cell", "clean spikes", "legible"], rows) + [""]


def pointer_section(name: str, c: dict) -> list[str]:
    task = c["task"]
    m, uniform = task["memory_bits"], c["uniform"]
    lines = [f"## `{name}`", "",
             f"- Task: {m} memory bits, {task['address_bits']} address bits; the readout is the last input "
             f"position (T = {round(1 / uniform)}; a head attending uniformly over it puts 1/T = {fmt(uniform, 3)} "
             "on each cell).",
             f"- Accuracy {fmt(c['accuracy'], 4)} (10,000 fresh sequences); loss {c['loss']:.2g}.",
             f"- Flip test (600 sequences): flipping the addressed cell changes the output "
             f"{fmt(c['flip_addressed'], 3)} of the time, flipping another cell {fmt(c['flip_other'], 3)}.",
             f"- Clean single-head spikes (one head ≥ 0.5 on the addressed cell, on that address's mean over "
             f"4,000 sequences): {c['spikes']} of {m} addresses."]
    if "legible" in c:
        lines.append(f"- Legible (some head ≥ 0.5 on the addressed cell and a clean spike for ≥ "
                     f"{LEGIBLE_SPIKES[name]} of {m} addresses): {'yes' if c['legible'] else 'no'}.")
    lines.append(f"- Share of addresses on which a head's attention on the addressed cell is near uniform "
                 f"(< {NEAR_UNIFORM}): lowest over layers and heads {fmt(c['min_near_uniform_share'], 2)} "
                 f"(\"most addresses\": ≥ {fmt(MOST_ADDRESSES, 2)} in every layer and head).")
    committed = c["seeds"].get("committed")
    if committed is not None:
        lines.append(f"- Committed seed: {committed} ({c['seeds'].get('why', '')}).")
    lines += ["", "Mean attention from the readout to the addressed cell (4,000 sequences), per layer and head, "
              f"next to uniform 1/T = {fmt(uniform, 3)}:", ""]
    heads = c["readout_per_head"]
    rows = [[str(layer), fmt(c["readout_per_layer"][layer], 3)] + [fmt(a, 3) for a in heads[layer]]
            + [" ".join(fmt(s, 2) for s in c["near_uniform_share"][layer])] for layer in range(len(heads))]
    lines += table(["layer", "mean over heads"] + [f"head {h}" for h in range(len(heads[0]))]
                   + [f"share of addresses < {NEAR_UNIFORM}, per head"], rows)
    points = ["embedding"] + [f"after layer {layer}" for layer in range(len(heads))]
    lines += ["", f"Residual patching ({c['recovery_pairs']} clean / flipped pairs of {c['recovery_tried']}, the "
              "addressed cell flipped, pairs with D_clean − D_corr < 1 dropped): recovery = (D_patched − D_corr) / "
              "(D_clean − D_corr), D = logit[ans] − logit[1 − ans], patching the clean residual at every "
              "position of the class. The last column is a check: memory cells before the addressed cell, "
              "exactly 0 by the causal mask.", ""]
    lines += table(["residual point"] + c["recovery_classes"],
                   [[p] + [fmt(v, 2) for v in row] for p, row in zip(points, c["recovery"])])
    return lines + [""] + seeds_table(c)


def classifier_section() -> list[str]:
    """Notebook 02's classifiers (models/jw-classifiers/): test accuracy by variant and kind, over seeds."""
    from utils.attention_classifiers import classifier_folder, manifest

    folder = classifier_folder()
    if not (folder / "classifiers.json").exists():
        return []
    records, groups = manifest(), {}
    for name, record in records.items():
        kind = name.removeprefix(record["variant"] + "-").rsplit("-seed", 1)[0]
        groups.setdefault((record["variant"], kind), []).append(record)
    rows = []
    for (variant, kind), runs in sorted(groups.items()):
        accuracies = [r["test_accuracy"] for r in runs]
        rows.append([variant, kind, str(len(runs)), f"{sum(accuracies) / len(runs):.3f} ({min(accuracies):.3f}–{max(accuracies):.3f})",
                     ", ".join(str(r["best_epoch"]) for r in runs), f"{sum(r['seconds'] for r in runs):.0f}"])
    weights = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return ["## `jw-classifiers` (notebook 02)", "",
            f"Jain & Wallace's attention classifiers on `utils.polarity` (a generated task whose generator knows which tokens "
            f"decide each label): `python -m utils.zoo.train_classifiers` trains all {len(records)} "
            f"({sum(r['seconds'] for r in records.values()) / 60:.1f} min on one thread, {weights / 1e6:.2f} MB in all). "
            "Test accuracy on 1000 examples of a generator seed never trained or selected on; the best epoch of 8 is "
            "chosen by dev loss.", ""] + table(
        ["variant", "encoder-attention", "seeds", "test accuracy: mean (min–max)", "best epoch per seed", "train s (all seeds)"],
        rows) + [""]


def markdown(cards: dict[str, dict]) -> str:
    lines = ["# Course models", "",
             "*Generated by `python -m utils.zoo.model_card`; do not edit by hand. Numbers measured on CPU.*", "",
             "Load with `from utils.models import load_model; model = load_model(name)`. "
             "Loss: next-token cross-entropy on held-out corpus text (language models), cross-entropy of the "
             "target (pointer models). Training ran on one CPU thread; wall time includes waiting for a shared "
             "machine, CPU time does not (– where not recorded). Load times: `python benchmarks/models.py`.",
             ""]
    lines += overview(cards) + [""] + zoo_timing_lines()
    for name, c in cards.items():
        lines += section(name, c)
    lines += classifier_section()
    return "\n".join(lines).rstrip() + "\n"


def section(name: str, card: dict) -> list[str]:
    """One model's section of the card, from its `## \\`name\\`` heading to the blank line before the next."""
    return (pointer_section(name, card) if name in pointer.TASKS else ioi_section(name, card) if name == "ioi-lm"
            else facts_section(name, card) if name == "facts-lm" else backcopy_section(name, card)
            if name == "backcopy-lm" else lm_section(name, card))


def splice(card_text: str, cards: dict[str, dict]) -> str:
    """`card_text` with the overview row and the section of each model in `cards` replaced by fresh ones, and the zoo
    timing read again from models/zoo_timing.json; every other model's row and section stay as they were. A model the
    card lacks is an error."""
    lines = card_text.rstrip("\n").split("\n")
    timing = zoo_timing_lines()[:1]
    at = [i for i, line in enumerate(lines) if line.startswith("The whole zoo, trained end to end")]
    if timing and len(at) == 1:
        lines[at[0]] = timing[0]
    fresh_rows = dict(zip(cards, overview(cards)[2:]))
    for name, c in cards.items():
        heading = f"## `{name}`"
        row = [i for i, line in enumerate(lines) if line.startswith(f"| `{name}` |")]
        if heading not in lines or len(row) != 1:
            raise ValueError(f"{name} is not on the card yet: run `python -m utils.zoo.model_card` without names")
        lines[row[0]] = fresh_rows[name]
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section(name, c)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="models to measure (default: every course model); with names, only "
                                                 "their rows and sections of the card are rewritten")
    parser.add_argument("--json", action="store_true", help="print measurements as JSON instead of writing the card")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.names or card_order(course_models())
    cards = {name: measure(name) for name in names}
    if args.json:
        print(json.dumps(cards, indent=1))
    else:
        README.write_text(splice(README.read_text(), cards) if args.names else markdown(cards))
        print(f"wrote {README}")


if __name__ == "__main__":
    main()
