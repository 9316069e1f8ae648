"""How many torch threads suit a small machine? Times notebook 00's head-ablation loop per setting.

    python benchmarks/threads.py            # each setting in a fresh process, as a Jupyter kernel starts

Each run starts a clean interpreter with no OMP_NUM_THREADS / MKL_NUM_THREADS in its environment (as
JupyterLab starts kernels), then either leaves torch's default alone or calls torch.set_num_threads(n),
and times 24 head ablations (two forward passes each) of course-lm on a [32, 40] batch, three times.
The result chooses utils.env.torch_threads().
"""

from __future__ import annotations

import os
import subprocess
import sys

RUN = r"""
import sys, time, torch
threads = int(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
from utils.models import load_model
from utils.corpus import held_out_batch
torch.set_grad_enabled(False)
model = load_model("course-lm")
tokens = held_out_batch(n=32, length=40)

def ablate(layer, head):
    def hook(z, hook):
        z[:, :, head] = 0.0
        return z
    model(tokens, return_type="loss")
    model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])

times = []
for _ in range(3):
    start = time.perf_counter()
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            ablate(layer, head)
    times.append(time.perf_counter() - start)
print(f"{torch.get_num_threads()} {min(times):.2f} {max(times):.2f}")
"""


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["COURSE_TORCH_THREADS"] = "default"  # keep utils.env from choosing: we measure the raw settings
    print(f"cpu_count={os.cpu_count()}  (24 head ablations of course-lm on [32, 40], best and worst of 3)")
    print(f"{'setting':<22}{'threads':>8}{'best s':>9}{'worst s':>9}")
    for threads in [0, 1, 2, 4]:
        if threads > (os.cpu_count() or 1) * 2:
            continue
        out = subprocess.run([sys.executable, "-c", RUN, str(threads)], env=env, capture_output=True, text=True, check=True)
        used, best, worst = out.stdout.split()
        label = "torch default" if threads == 0 else f"set_num_threads({threads})"
        print(f"{label:<22}{used:>8}{best:>9}{worst:>9}", flush=True)


if __name__ == "__main__":
    main()
