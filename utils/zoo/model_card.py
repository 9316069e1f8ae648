"""Measure every course model and write models/README.md (the model card), or print the numbers as JSON.

    python -m utils.zoo.model_card           # rewrite models/README.md
    python -m utils.zoo.model_card --json    # print the measurements instead
    python -m utils.zoo.model_card pointer-8 --json   # only some models

Language models (course-lm, attn-only-2l): held-out loss, per-head induction / previous-token scores on
[BOS] + r + r, BOS-sink scores on held-out corpus text, IOI, fact recall (plain and through a code
table), the causal-trace summary (course-lm) and the induction score across training checkpoints.
Pointer models: accuracy, flip test, attention from the readout to the addressed cell. Training times come from each models/*/training.json.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from utils import corpus, pointer
from utils.analysis import causal_trace, metrics
from utils.models import MODELS_DIR, NATIVE_CONFIG, course_models, list_checkpoints, load_model

README = MODELS_DIR / "README.md"
SEED = 0
SINK_EPS = 0.3
ORDER = ["course-lm", "attn-only-2l", "pointer-8", "pointer-32"]  # card order; other models follow by name


# ---------------------------------------------------------------- data


def corpus_contexts(n: int, n_ctx: int, seed: int = 10_000) -> torch.Tensor:
    """Held-out packed corpus contexts cut to their common unpadded length: -> [n, pos]."""
    from utils.zoo.train_lm import context_to_ids

    stream = corpus.training_stream(seed, n_ctx)
    tokens = torch.tensor([context_to_ids(next(stream), n_ctx) for _ in range(n)])  # [n, n_ctx]
    unpadded = (tokens != corpus.token_ids()[corpus.PAD]).sum(1).min().item()
    return tokens[:, :unpadded]


# ---------------------------------------------------------------- measurements


def load_seconds(name: str) -> float:
    """Seconds to load a model once imports and lazy initialisation are done (second of two loads)."""
    load_model(name)
    start = time.perf_counter()
    load_model(name)
    return time.perf_counter() - start


def training_record(name: str) -> dict:
    """Steps and wall seconds from models/<name>/training.json (empty if absent)."""
    path = MODELS_DIR / name / "training.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    wall = record.get("wall_time_s", record.get("wall_seconds"))
    return {"steps": record.get("steps"), "wall_seconds": wall, "cpu_seconds": record.get("cpu_time_s")}


def size(model) -> dict:
    """Architecture numbers and the underlying model's parameter count (tied weights count once)."""
    cfg = model.cfg
    params = sum(p.numel() for p in model.original_model.parameters())
    return {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model, "d_vocab": cfg.d_vocab,
            "n_ctx": cfg.n_ctx, "params": params}


def measure_lm(name: str, model) -> dict:
    """Loss, head scores, IOI, fact recall, sinks, checkpoints and (course-lm) the causal-trace summary."""
    contexts = corpus_contexts(32, model.cfg.n_ctx)
    repeated = corpus.repeated_random_tokens(batch=20, length=25, seed=SEED)
    scores = metrics.head_scores(model, repeated)
    first, second = metrics.repeated_half_losses(model, repeated)
    patterns = metrics.attention_patterns(model, contexts)[1:]  # layers beyond 0
    ioi = metrics.ioi_scores(model, corpus.ioi_prompts(200, seed=SEED))
    out = {
        "loss": metrics.mean_loss(model, contexts),
        "repeated_loss": {"first_half": first, "second_half": second, "ratio": second / first},
        "induction": scores.induction.tolist(),
        "previous_token": scores.previous_token.tolist(),
        "bos_sink": metrics.bos_sink_scores(model, contexts).tolist(),
        "sink_rate": {"k0": metrics.sink_rate(patterns, 0, SINK_EPS),
                      "max_k1to5": max(metrics.sink_rate(patterns, k, SINK_EPS) for k in range(1, 6))},
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


def trace_summary(model, n_facts: int = 100) -> dict:
    """Causal-trace summary over `n_facts` correctly recalled fact prompts."""
    summary = causal_trace.summarize(model, corpus.fact_prompts(seed=SEED), n_facts=n_facts)
    return {"n_facts": summary.n_facts, "mean_low": summary.mean_low, "mean_high": summary.mean_high,
            "last_subject": summary.last_subject.tolist(), "last_token": summary.last_token.tolist()}


def measure_pointer(name: str, model) -> dict:
    """Loss, accuracy, flip test and attention on the addressed cell for a pointer model."""
    task = pointer.task_for(name)
    flips = metrics.flip_test(model, task, n=600, seed=SEED)
    return {"task": {"memory_bits": task.memory_bits, "address_bits": task.address_bits},
            "loss": metrics.pointer_loss(model, task), "accuracy": metrics.pointer_accuracy(model, task, seed=SEED),
            "flip_addressed": flips.addressed, "flip_other": flips.other,
            "address_attention": metrics.pointer_address_attention(model, task).tolist()}


def measure(name: str) -> dict:
    """Every measurement of one course model."""
    model = load_model(name)
    native = (MODELS_DIR / name / NATIVE_CONFIG).exists()
    out = {"format": "native" if native else "hf", "load_seconds": load_seconds(name), **size(model),
           "training": training_record(name)}
    out.update(measure_pointer(name, model) if name in pointer.TASKS else measure_lm(name, model))
    return out


# ---------------------------------------------------------------- markdown


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def head_table(card: dict) -> list[str]:
    """One row per layer, one column per head: induction / previous-token / BOS sink."""
    keys, n_heads = ("induction", "previous_token", "bos_sink"), card["n_heads"]
    rows = [[str(layer)] + [" / ".join(fmt(card[key][layer][h], 2) for key in keys) for h in range(n_heads)]
            for layer in range(card["n_layers"])]
    return table(["layer"] + [f"head {h}" for h in range(n_heads)], rows)


def overview(cards: dict[str, dict]) -> list[str]:
    rows = []
    for name, c in cards.items():
        t = c["training"]
        rows.append([f"`{name}`", c["format"], f"{c['params']:,}", f"{c['n_layers']} × {c['n_heads']}",
                     str(c["d_model"]), str(c["n_ctx"]), str(t.get("steps", "–")), fmt(t.get("wall_seconds"), 0),
                     fmt(t.get("cpu_seconds"), 0), f"{c['loss']:.3g}", fmt(c["load_seconds"], 2)])
    return table(["model", "format", "params", "layers × heads", "d_model", "n_ctx", "train steps", "train wall s",
                  "train CPU s", "loss", "load s"], rows)


def lm_section(name: str, c: dict) -> list[str]:
    r, ioi, facts, sink = c["repeated_loss"], c["ioi"], c["fact_recall"], c["sink_rate"]
    lines = [f"## `{name}`", "",
             f"- Held-out corpus loss {fmt(c['loss'])}. Repeated random tokens [BOS]+r+r (|r| = 25): loss "
             f"{fmt(r['first_half'])} on the first copy, {fmt(r['second_half'])} on the second "
             f"(ratio {fmt(r['ratio'], 2)}).",
             f"- IOI (200 prompts): top-1 {fmt(ioi['top1'])}, mean logit(IO) − logit(S) {fmt(ioi['logit_diff'], 2)}.",
             f"- Fact recall top-1: {fmt(facts['train_clauses'])} (900 prompts), "
             f"{fmt(facts['held_out_clause'])} with a clause never seen in training (300); "
             f"{fmt(facts['code_lookup'])} answering with the attribute's code from a table in the context (300).",
             f"- Attention sinks beyond layer 0 (Gu et al., ε = {SINK_EPS}): Sink₀ = {fmt(sink['k0'], 1)}%, "
             f"max over k = 1..5 of Sink_k = {fmt(sink['max_k1to5'], 1)}%.", "",
             "Per head: induction / previous-token / BOS-sink score (BOS sink on held-out corpus text).", ""]
    lines += head_table(c)
    if "checkpoint_induction" in c:
        steps = c["checkpoint_induction"]
        lines += ["", "Best induction score over heads, by training step:", ""]
        lines += table([str(s) for s in steps], [[fmt(v, 2) for v in steps.values()]])
    if "causal_trace" in c:
        lines += [""] + trace_section(c["causal_trace"])
    return lines + [""]


def trace_section(t: dict) -> list[str]:
    lines = [f"Causal trace (ROME, noise 3 × subject-embedding std, 10 samples) over {t['n_facts']} recalled "
             f"facts: mean p(answer) clean {fmt(t['mean_high'])}, corrupted {fmt(t['mean_low'])}. Mean recovered "
             "fraction (score − low) / (high − low) when restoring the residual stream after block L:", ""]
    pairs = zip(t["last_subject"], t["last_token"])
    rows = [[str(layer), fmt(s, 2), fmt(e, 2)] for layer, (s, e) in enumerate(pairs)]
    return lines + table(["block L", "last subject token", "last token"], rows)


def pointer_section(name: str, c: dict) -> list[str]:
    task = c["task"]
    attention = ", ".join(f"layer {layer}: " + " ".join(fmt(a, 2) for a in heads)
                          for layer, heads in enumerate(c["address_attention"]))
    return [f"## `{name}`", "",
            f"- Task: {task['memory_bits']} memory bits, {task['address_bits']} address bits.",
            f"- Accuracy {fmt(c['accuracy'], 4)} (10,000 fresh sequences); loss {c['loss']:.2g}.",
            f"- Flip test (600 sequences): flipping the addressed cell changes the output "
            f"{fmt(c['flip_addressed'], 3)} of the time, flipping another cell {fmt(c['flip_other'], 3)}.",
            f"- Mean attention from the readout to the addressed cell, per head: {attention}.", ""]


def markdown(cards: dict[str, dict]) -> str:
    lines = ["# Course models", "",
             "*Generated by `python -m utils.zoo.model_card`; do not edit by hand. Numbers measured on CPU.*", "",
             "Load with `from utils.models import load_model; model = load_model(name)`. "
             "Loss: next-token cross-entropy on held-out corpus text (language models), cross-entropy of the "
             "target (pointer models). Training ran on one CPU thread; wall time includes waiting for a shared "
             "machine, CPU time does not (– where not recorded). Load times are for a second load, after imports.",
             ""]
    lines += overview(cards) + [""]
    for name, c in cards.items():
        lines += pointer_section(name, c) if name in pointer.TASKS else lm_section(name, c)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="models to measure (default: every course model)")
    parser.add_argument("--json", action="store_true", help="print measurements as JSON instead of writing the card")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.names or sorted(course_models(), key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    cards = {name: measure(name) for name in names}
    if args.json:
        print(json.dumps(cards, indent=1))
    else:
        README.write_text(markdown(cards))
        print(f"wrote {README}")


if __name__ == "__main__":
    main()
