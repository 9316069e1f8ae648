"""How long relative-attention tracing takes: one prompt's full communication graph on one core.

    OMP_NUM_THREADS=1 python benchmarks/relative_attention.py [--prompts 20]

Prints the one-off cost of every head's two SVDs (cached once per model), then, per held-out IOI prompt of
ioi-lm in float64, the time of the forward pass with cache, of the seeds (direct logit attribution), and of
the recursive trace (70 % rule), with the median and the slowest prompt. The target is at most 2 s per
prompt for the whole graph (issue 15). Not a timed test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import redirect_stdout
from io import StringIO

import torch

from utils import ioi
from utils import relative_attention as ra
from utils.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    with redirect_stdout(StringIO()):
        model = load_model("ioi-lm", compat=True).to(torch.float64)
    start = time.perf_counter()
    ra.model_svds(model)
    print(f"per-head SVDs, once per model ({model.cfg.n_layers * model.cfg.n_heads} heads x 2 sides): "
          f"{time.perf_counter() - start:.3f} s")
    rows = []
    for prompt in ioi.prompts(args.prompts, "held-out both", seed=6):
        io, s = model.to_single_token(prompt.io), model.to_single_token(prompt.s)
        t0 = time.perf_counter()
        tokens = model.to_tokens(prompt.text)
        _, cache = model.run_with_cache(tokens)
        t1 = time.perf_counter()
        seeds = ra.seeds(model, cache, model.W_U[:, io] - model.W_U[:, s])
        t2 = time.perf_counter()
        edges = ra.trace_prompt(model, cache, [(l, h, tokens.shape[1] - 1, src) for l, h, src in seeds])
        t3 = time.perf_counter()
        rows.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0, len(edges), len({e.firing for e in edges})))
    print(f"{'':<10}{'forward':>10}{'seeds':>10}{'trace':>10}{'total':>10}{'edges':>8}{'firings':>9}")
    for name, pick in (("median", statistics.median), ("slowest", max)):
        column = [pick(r[i] for r in rows) for i in range(6)]
        print(f"{name:<10}" + "".join(f"{v:>10.3f}" for v in column[:4]) + f"{column[4]:>8.0f}{column[5]:>9.0f}")
    worst = max(r[3] for r in rows)
    print(f"{len(rows)} prompts: the slowest full graph took {worst:.3f} s on one core "
          f"({'within' if worst <= 2 else 'OVER'} the 2 s target)")


if __name__ == "__main__":
    main()
