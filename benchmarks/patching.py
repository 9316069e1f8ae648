"""Exact activation patching three ways: batched (utils.patching.patch), a per-cell loop, TransformerLens.

    python benchmarks/patching.py            # offline, one torch thread, about a minute on 2 cores

On ioi-lm and IOI prompts of one held-out family (ABC counterfactuals, denoising: the corrupted run with
one clean activation restored), two grids: the residual stream entering each block at each position
([layer, pos]) and each head's output at each position ([layer, pos, head]). Each grid is computed by
`patching.patch` (sites x prompts rows in a few forward passes), by `patching.patch_loop` (one forward
pass per site) and by transformer_lens.patching's get_act_patch_resid_pre / get_act_patch_attn_head_out_by_pos
(also one pass per site), for one prompt (ROME's setting: one grid per prompt) and for 16 prompts at once.
It prints each method's seconds (best of 5), the speed-up of the batched version over the loop, and the
largest difference in the mean logit difference between any two methods.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's helpers draw a progress bar per grid

import torch
from transformer_lens import patching as tl_patching

from utils import ioi, patching
from utils.models import load_model

torch.set_grad_enabled(False)


def best_of(fn, repeats: int = 5) -> tuple[float, torch.Tensor]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def grid_row(model, batch: patching.IOIBatch, name: str, sites: list, tl_grid) -> str:
    """One line of the table: seconds of each method, the speed-up, the largest difference between methods."""
    _, clean_cache = model.run_with_cache(batch.clean)
    batched_s, batched = best_of(lambda: patching.patch(model, batch.corrupted, clean_cache, sites))
    loop_s, looped = best_of(lambda: patching.patch_loop(model, batch.corrupted, clean_cache, sites))
    tl_s, tl = best_of(lambda: tl_grid(model, batch.corrupted, clean_cache, lambda logits: mean_diff(logits[:, -1], batch)))
    ours = mean_diff(batched, batch)  # [sites]
    largest = max((ours - mean_diff(looped, batch)).abs().max().item(), (ours - tl.flatten()).abs().max().item())
    return (f"{name:<28}{len(batch):>8}{len(sites):>7}{batched_s:>11.3f}{loop_s:>9.3f}{tl_s:>8.3f}"
            f"{loop_s / batched_s:>9.1f}x{largest:>11.1e}")


def mean_diff(logits: torch.Tensor, batch: patching.IOIBatch) -> torch.Tensor:
    """Mean logit(IO) - logit(S) over the prompts: final logits [..., batch, vocab] -> [...]."""
    return patching.logit_diff(logits, batch.io, batch.s).mean(-1)


def main() -> None:
    model = load_model("ioi-lm")
    family = ioi.HELD_OUT_FAMILIES[0]
    prompts = [p for p in ioi.prompts(400, "held-out families", seed=3) if p.family == family]  # 25 of this family
    print(f"ioi-lm, family {family}, torch threads {torch.get_num_threads()}")
    print(f"{'grid':<28}{'prompts':>8}{'sites':>7}{'batched s':>11}{'loop s':>9}{'TL s':>8}{'speed-up':>10}{'max diff':>11}")
    for n_prompts in (1, 16):
        batch = patching.ioi_batch(model, prompts[:n_prompts])
        n_pos = batch.clean.shape[1]
        print(grid_row(model, batch, "resid_pre [layer, pos]", patching.resid_sites(model, n_pos),
                       tl_patching.get_act_patch_resid_pre))
        print(grid_row(model, batch, "head out [layer, pos, head]", patching.head_sites(model, n_pos),
                       tl_patching.get_act_patch_attn_head_out_by_pos))


if __name__ == "__main__":
    main()
