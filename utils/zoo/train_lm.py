"""Training recipes for the course's language models (seeded; rerunning reproduces the weights).

    python -m utils.zoo.train_lm course-lm       # 6-layer GPT-2 on the synthetic corpus -> models/course-lm/
    python -m utils.zoo.train_lm attn-only-2l    # 2-layer attention-only native model -> models/attn-only-2l/
    python -m utils.zoo.train_lm course-lm --tiny   # seconds-long smoke run into a temporary folder

Always run with OMP_NUM_THREADS=1 on small CPUs. Each run writes training.json (seed, steps, batch,
learning rate, wall and CPU seconds, final loss) next to the weights.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils import corpus
from utils.models import MODELS_DIR, build_native, save_checkpoint, save_native
from utils.tokenizer import load_tokenizer, save_tokenizer


@dataclass(frozen=True)
class RunConfig:
    """Model size and optimisation settings of one training run."""
    n_layers: int
    d_model: int
    n_heads: int
    n_ctx: int
    steps: int
    batch: int
    lr: float
    warmup: int
    seed: int
    p_random: float  # fraction of contexts that are [BOS] + r + r
    checkpoints: tuple[int, ...] = ()
    doc_weights: tuple[tuple[str, float], ...] = tuple(corpus.DEFAULT_WEIGHTS.items())  # mixture of the other contexts


COURSE_LM = RunConfig(n_layers=6, d_model=128, n_heads=4, n_ctx=64, steps=6000, batch=32, lr=1.5e-3,
                      warmup=200, seed=0, p_random=0.12,
                      doc_weights=(("fact", 0.3), ("lookup", 0.15), ("registry", 0.1), ("ioi", 0.2), ("grammar", 0.1),
                                   ("repeat", 0.15)))
ATTN_ONLY_2L = RunConfig(n_layers=2, d_model=64, n_heads=4, n_ctx=64, steps=3000, batch=32, lr=3e-3,
                         warmup=50, seed=0, p_random=0.9,
                         checkpoints=(0, 250, 500, 750, 900, 1000, 1100, 1150, 1200, 1250, 1300, 1350, 1400, 1500, 2000))
TINY = dict(n_layers=1, d_model=16, n_heads=2, steps=3, batch=2, warmup=1)


# ---------------------------------------------------------------- data
def context_to_ids(docs: list[corpus.Document], n_ctx: int) -> list[int]:
    """Token ids of one packed context, right-padded with PAD to n_ctx."""
    ids = corpus.token_ids()
    row = [ids[w] for doc in docs for w in doc.words][:n_ctx]
    return row + [ids[corpus.PAD]] * (n_ctx - len(row))


def batches(cfg: RunConfig):
    """Endless deterministic batches of token ids, shape [batch, n_ctx]."""
    stream = corpus.training_stream(cfg.seed, cfg.n_ctx, dict(cfg.doc_weights), cfg.p_random)
    while True:
        yield torch.tensor([context_to_ids(next(stream), cfg.n_ctx) for _ in range(cfg.batch)])


def lm_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, ignoring PAD targets. logits [batch, pos, vocab], tokens [batch, pos]."""
    targets = tokens[:, 1:].masked_fill(tokens[:, 1:] == corpus.token_ids()[corpus.PAD], -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)


def lr_at(step: int, cfg: RunConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak learning rate."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


# ---------------------------------------------------------------- loop
def train(model: torch.nn.Module, forward, cfg: RunConfig, on_step=None, log: Path | None = None) -> dict:
    """AdamW on the corpus stream; `forward(tokens) -> logits`; `on_step(step)` runs before each step."""
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=0.01)
    data, losses, start, cpu_start = batches(cfg), [], time.time(), time.process_time()
    model.train()
    for step in tqdm(range(cfg.steps), desc="train", mininterval=10):
        if on_step:
            on_step(step)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        tokens = next(data)  # [batch, n_ctx]
        loss = lm_loss(forward(tokens), tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if log and (step % 100 == 0 or step == cfg.steps - 1):
            with open(log, "a") as f:
                f.write(f"step {step} loss {sum(losses[-100:]) / len(losses[-100:]):.4f} t {time.time() - start:.0f}s\n")
    model.eval()
    tail = losses[-100:]
    return {**asdict(cfg), "wall_seconds": round(time.time() - start, 1), "cpu_time_s": round(time.process_time() - cpu_start, 1),
            "final_loss": round(sum(tail) / len(tail), 4)}


# ---------------------------------------------------------------- course-lm
def build_course_lm(cfg: RunConfig):
    """A freshly initialised GPT2LMHeadModel (eager attention, no dropout) for the course vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    ids = corpus.token_ids()
    config = GPT2Config(vocab_size=len(ids), n_positions=cfg.n_ctx, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                        n_head=cfg.n_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=ids[corpus.BOS], eos_token_id=ids[corpus.BOS], pad_token_id=ids[corpus.PAD])
    config._attn_implementation = "eager"
    torch.manual_seed(cfg.seed)
    return GPT2LMHeadModel(config)


def train_course_lm(cfg: RunConfig = COURSE_LM, out: Path = MODELS_DIR / "course-lm", log: Path | None = None,
                    on_step=None) -> dict:
    """Train course-lm with a plain loop on the HF model, then save it with its tokenizer and training.json."""
    model = build_course_lm(cfg)
    record = train(model, lambda tokens: model(tokens).logits, cfg, on_step=on_step, log=log)
    out = Path(out)
    model.save_pretrained(str(out))
    save_tokenizer(out)
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


# ---------------------------------------------------------------- attn-only-2l
def native_config(cfg: RunConfig) -> dict:
    """TransformerBridgeConfig fields of the attention-only model (saved as native_config.json)."""
    return dict(d_model=cfg.d_model, d_head=cfg.d_model // cfg.n_heads, n_heads=cfg.n_heads, n_layers=cfg.n_layers,
                n_ctx=cfg.n_ctx, d_vocab=len(corpus.token_ids()), attn_only=True, normalization_type="LN",
                seed=cfg.seed)


def train_attn_only(cfg: RunConfig = ATTN_ONLY_2L, out: Path = MODELS_DIR / "attn-only-2l", log: Path | None = None,
                    on_step=None) -> dict:
    """Train the 2-layer attention-only model, saving fp16 snapshots at cfg.checkpoints and the final weights."""
    out = Path(out)
    save_tokenizer(out)  # boot_native needs a tokenizer loaded from disk
    config = native_config(cfg)
    torch.manual_seed(cfg.seed)
    model = build_native(config, load_tokenizer(out))

    def snapshot(step: int) -> None:
        if step in cfg.checkpoints:
            save_checkpoint(model, out, step)
        if on_step:
            on_step(step)

    record = train(model, lambda tokens: model(tokens, return_type="logits"), cfg, on_step=snapshot, log=log)
    save_checkpoint(model, out, cfg.steps)
    save_native(model, config, out)
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


RECIPES = {"course-lm": (COURSE_LM, train_course_lm), "attn-only-2l": (ATTN_ONLY_2L, train_attn_only)}


def main() -> None:
    from transformers.utils import logging as hf_logging

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("--tiny", action="store_true", help="a few steps of a tiny model (smoke test)")
    parser.add_argument("--out", type=Path, help="output folder (default models/<model>)")
    parser.add_argument("--log", type=Path, help="append loss every 100 steps to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    cfg, recipe = RECIPES[args.model]
    out = args.out or MODELS_DIR / args.model
    if args.tiny:  # never overwrite the shipped weights with a smoke run
        cfg = replace(cfg, **TINY, checkpoints=tuple(c for c in cfg.checkpoints if c < TINY["steps"]))
        out = args.out or Path(tempfile.mkdtemp(prefix=f"{args.model}-tiny-"))
    record = recipe(cfg, out, args.log)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
