"""Train a pointer model (see utils/pointer.py) and save it under models/<name>/.

    python -m utils.zoo.train_pointer pointer-8            # about a minute on one core
    python -m utils.zoo.train_pointer pointer-32           # under ten minutes on one core
    python -m utils.zoo.train_pointer pointer-8 --smoke    # a few steps into a temporary folder

Fresh random sequences every step, cross-entropy at the last position only, Adam(0.9, 0.95) with a
linear warm-up then cosine decay, Xavier-uniform init (the default init stalls on pointer-32).
Writes native_config.json, model.safetensors and training.json (wall time, steps, accuracy, flip test).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils import pointer
from utils.analysis import metrics
from utils.models import MODELS_DIR, build_native, save_native


@dataclass(frozen=True)
class Recipe:
    """Architecture and optimisation settings for one pointer model."""

    d_model: int
    n_heads: int
    n_layers: int
    d_mlp: int
    steps: int
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 500
    seed: int = 0


RECIPES: dict[str, Recipe] = {
    "pointer-8": Recipe(d_model=64, n_heads=1, n_layers=2, d_mlp=128, steps=3000),
    "pointer-32": Recipe(d_model=128, n_heads=4, n_layers=3, d_mlp=256, steps=2000),
}
EVAL_EVERY = 250


def native_config(task: pointer.PointerTask, recipe: Recipe) -> dict:
    """TransformerBridgeConfig fields: learned positions, pre-LN, GELU MLPs, Xavier-uniform init."""
    return dict(d_model=recipe.d_model, d_head=recipe.d_model // recipe.n_heads, n_heads=recipe.n_heads,
                n_layers=recipe.n_layers, n_ctx=task.context, d_vocab=2, d_mlp=recipe.d_mlp, act_fn="gelu",
                normalization_type="LN", init_mode="xavier_uniform", seed=recipe.seed)


def learning_rate(step: int, recipe: Recipe) -> float:
    """Linear warm-up over `recipe.warmup` steps, then cosine decay to zero at `recipe.steps`."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * progress))


def last_position_loss(model, sequences: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the target given the inputs, at the last position only."""
    inputs, targets = pointer.inputs_and_targets(sequences)  # [b, T], [b]
    logits = model(inputs)[:, -1]  # [b, 2]
    return F.cross_entropy(logits, targets)


def train(model, task: pointer.PointerTask, recipe: Recipe) -> list[dict]:
    """Train in place; returns the evaluation curve [{step, loss, accuracy}, ...]."""
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95))
    curve = []
    for step in tqdm(range(recipe.steps), desc="train", mininterval=10):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, recipe)
        model.train()
        loss = last_position_loss(model, pointer.sample(task, recipe.batch_size, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % EVAL_EVERY == 0 or step + 1 == recipe.steps:
            model.eval()
            accuracy = metrics.pointer_accuracy(model, task, n=2000, seed=10_000 + step)
            curve.append(dict(step=step + 1, loss=round(loss.item(), 5), accuracy=round(accuracy, 4)))
            tqdm.write(f"step {step + 1}: loss {loss.item():.4f}, accuracy {accuracy:.4f}")
    return curve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--smoke", action="store_true", help="train 20 steps into a temporary folder")
    parser.add_argument("--out", type=Path, help="output folder (default models/<name>)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    task, recipe = pointer.task_for(args.name), RECIPES[args.name]
    if args.smoke:
        recipe = Recipe(**{**asdict(recipe), "steps": 20, "warmup": 5})
    folder = args.out or (Path(tempfile.mkdtemp()) / args.name if args.smoke else MODELS_DIR / args.name)
    config = native_config(task, recipe)
    model = build_native(config)

    start, cpu_start = time.perf_counter(), time.process_time()
    curve = train(model, task, recipe)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    model.eval()
    flips = metrics.flip_test(model, task, n=600, seed=1)
    record = dict(model=args.name, task=asdict(task), recipe=asdict(recipe), wall_time_s=round(wall, 1),
                  cpu_time_s=round(cpu, 1), steps=recipe.steps, examples_seen=recipe.steps * recipe.batch_size,
                  final_accuracy=round(metrics.pointer_accuracy(model, task, n=10_000, seed=2), 4),
                  flip_test={k: round(v, 4) for k, v in asdict(flips).items()},
                  torch_threads=torch.get_num_threads(), curve=curve)
    save_native(model, config, folder)
    (folder / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}, indent=2))
    print(f"saved to {folder}")


if __name__ == "__main__":
    main()
