"""The model zoo's one training loop, one config shape and one learning-rate schedule.

Every course model is a `Recipe`: a `TrainConfig` (architecture, optimisation, data parameters; the same
fields for every model) plus what differs between models: how to build it, its data (an endless
iterator of batches), its loss, what to measure at each evaluation, and how to save it. `train` is the
loop all of them run; `lr_at` is the schedule all of them use; `run` builds, trains and saves one.

    python -m utils.zoo.train course-lm          # any of course-lm, attn-only-2l, pointer-8, pointer-32
    python -m utils.zoo.train pointer-8 --smoke  # seconds-long run of a small variant into a temporary folder

Each run writes training.json next to the weights: the config, steps, examples seen, wall and CPU
seconds, final loss, the evaluation curve and whatever the recipe measures at the end, and the torch
version and CPU capability: the same recipe gives the same weights bit for bit only with the same
floating-point kernels (the shipped weights are not reproduced exactly on an AVX2 machine).

Seeds: every stream of a recipe (initialisation, data) comes from its config's `seed`, which is
ZOO_SEED for every shipped model recipe but ioi-lm (seed 2: see its seeds.json); a recipe's other
seeds are plain integers (train_pointer.seeded), so every stream stays what it was.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm


ZOO_SEED = 0  # the `seed` of every shipped recipe


@dataclass(frozen=True)
class TrainConfig:
    """One training run, the same shape for every course model."""

    # architecture
    n_layers: int
    d_model: int
    n_heads: int
    n_ctx: int
    d_mlp: int | None  # hidden width of the MLPs; None: attention-only
    # optimisation: AdamW; linear warm-up, then cosine decay from lr to lr * final_lr (see lr_at)
    steps: int
    batch: int
    lr: float
    warmup: int
    final_lr: float  # fraction of `lr` reached at the last step
    betas: tuple[float, float]
    weight_decay: float
    grad_clip: float | None  # max gradient norm; None: no clipping
    seed: int  # every stream of the run (initialisation, data) starts from this
    eval_every: int  # steps between evaluations (and after the last step)
    checkpoints: tuple[int, ...] = ()  # steps before which a snapshot is saved (recipes with snapshots)
    data: dict[str, Any] = field(default_factory=dict)  # the recipe's data parameters


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of step `step` (0-based): linear warm-up over `cfg.warmup` steps, then cosine
    decay to `cfg.lr * cfg.final_lr` at `cfg.steps`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    # gives, float for float, both schedules the shipped models were trained with (final_lr 0.1 and 0)
    return cfg.lr * (cfg.final_lr + (1 - cfg.final_lr) / 2 * (1 + math.cos(math.pi * progress)))


Batches = Iterator[Any]
LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


def train(model: torch.nn.Module, cfg: TrainConfig, batches: Batches, loss_fn: LossFn, *,
          evaluate: Callable[[torch.nn.Module, int], dict] | None = None,
          on_step: Callable[[int], None] | None = None, log: Path | None = None) -> dict:
    """Train `model` in place for `cfg.steps` AdamW steps on `next(batches)`, minimising `loss_fn(model, batch)`.

    `on_step(step)` runs before step `step` (0-based; snapshots); after every `cfg.eval_every` steps and
    after the last, `evaluate(model, step)` runs in eval mode and its numbers join the curve with the
    mean training loss of the last `cfg.eval_every` steps.
    Returns {"curve", "final_loss", "wall_seconds", "cpu_time_s"}.
    """
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    losses, curve = [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in tqdm(range(cfg.steps), desc="train", mininterval=10):
        if on_step:
            on_step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        model.train()
        loss = loss_fn(model, next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            model.eval()
            window = losses[-cfg.eval_every:]
            entry = dict(step=step + 1, loss=round(sum(window) / len(window), 5))
            if evaluate:
                with torch.no_grad():
                    entry.update(evaluate(model, step))
            curve.append(entry)
            line = " ".join(f"{k} {v}" for k, v in entry.items()) + f" t {time.perf_counter() - start:.0f}s"
            tqdm.write(line)
            if log:
                with open(log, "a") as f:
                    f.write(line + "\n")
    model.eval()
    return dict(curve=curve, final_loss=curve[-1]["loss"] if curve else None,
                wall_seconds=round(time.perf_counter() - start, 1),
                cpu_time_s=round(time.process_time() - cpu_start, 1))


@dataclass(frozen=True)
class Recipe:
    """A course model: its config and the functions that differ between models (data, loss, build, save)."""

    name: str
    config: TrainConfig
    build: Callable[[TrainConfig, Path], torch.nn.Module]  # a freshly initialised model (may write to the folder)
    batches: Callable[[TrainConfig], Batches]  # endless, deterministic batches
    loss: LossFn
    save: Callable[[torch.nn.Module, TrainConfig, Path], None]  # the trained model into the folder
    evaluate: Callable[[torch.nn.Module, TrainConfig, int], dict] | None = None  # curve numbers at `step`
    summary: Callable[[torch.nn.Module, TrainConfig], dict] | None = None  # final numbers for training.json
    snapshot: Callable[[torch.nn.Module, Path, int], None] | None = None  # saves a snapshot at cfg.checkpoints
    smoke: dict[str, Any] = field(default_factory=dict)  # config changes for a seconds-long smoke run

    def smoke_config(self) -> TrainConfig:
        """The config of a smoke run: `smoke` applied, snapshots kept only where the run reaches them."""
        cfg = replace(self.config, **self.smoke)
        return replace(cfg, checkpoints=tuple(c for c in cfg.checkpoints if c < cfg.steps))


def cpu_model() -> str:
    """The processor's model name (/proc/cpuinfo, else platform): two CPUs with the same capability (AVX512) can
    still round differently (their math libraries pick other kernels), so a run records which one it had."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(recipe: Recipe, cfg: TrainConfig | None = None, out: Path | None = None, log: Path | None = None,
        on_step: Callable[[int], None] | None = None) -> dict:
    """Build, train and save `recipe` (with `cfg`, default its own) into `out`; writes and returns training.json."""
    from utils.models import MODELS_DIR

    cfg = cfg or recipe.config
    out = Path(out or MODELS_DIR / recipe.name)
    out.mkdir(parents=True, exist_ok=True)
    model = recipe.build(cfg, out)

    def before_step(step: int) -> None:
        if recipe.snapshot and step in cfg.checkpoints:
            recipe.snapshot(model, out, step)
        if on_step:
            on_step(step)

    evaluate = (lambda m, step: recipe.evaluate(m, cfg, step)) if recipe.evaluate else None
    result = train(model, cfg, recipe.batches(cfg), recipe.loss, evaluate=evaluate, on_step=before_step, log=log)
    if recipe.snapshot:
        recipe.snapshot(model, out, cfg.steps)
    recipe.save(model, cfg, out)
    record = dict(model=recipe.name, config=asdict(cfg), steps=cfg.steps, examples_seen=cfg.steps * cfg.batch,
                  torch=torch.__version__, transformers=version("transformers"), cpu_model=cpu_model(),
                  cpu_capability=torch.backends.cpu.get_cpu_capability(),
                  torch_threads=torch.get_num_threads(), wall_seconds=result["wall_seconds"],
                  cpu_time_s=result["cpu_time_s"], final_loss=result["final_loss"],
                  **(recipe.summary(model, cfg) if recipe.summary else {}), curve=result["curve"])
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(recipes: dict[str, Recipe], argv: list[str] | None = None, doc: str | None = None) -> dict:
    """Command line: train one of `recipes` into models/<name>/, or a smoke run into a temporary folder."""
    from transformers.utils import logging as hf_logging

    parser = argparse.ArgumentParser(description=doc or __doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(recipes))
    parser.add_argument("--smoke", "--tiny", action="store_true",
                        help="a few steps of a small variant into a temporary folder (never the shipped weights)")
    parser.add_argument("--out", type=Path, help="output folder (default models/<name>)")
    parser.add_argument("--log", type=Path, help="append each evaluation line to this file")
    parser.add_argument("--seed", type=int, help="train another seed of the recipe (needs --out: the shipped "
                                                 "weights are the recipe's own seed)")
    args = parser.parse_args(argv)
    if args.seed is not None and args.out is None:
        parser.error("--seed needs --out")
    torch.set_num_threads(1)  # the shipped weights were trained on one thread
    hf_logging.set_verbosity_error()
    from utils.models import MODELS_DIR

    recipe = recipes[args.name]
    cfg, out = recipe.config, args.out or MODELS_DIR / args.name
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    if args.smoke:
        cfg = recipe.smoke_config()
        out = args.out or Path(tempfile.mkdtemp(prefix=f"{args.name}-smoke-"))
    record = run(recipe, cfg, out, args.log)
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}, indent=2))
    print(f"saved to {out}")
    return record
