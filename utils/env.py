"""The environment the course runs in, in one place: CI, tests, tools and notebooks share it.

    python -m utils.env     # prints CI's settings as NAME=value lines (.ci/run exports them)

- `CI_ENV`: one torch thread, no hub access, no progress bars. Tests (conftest.py), `.ci/run` and
  `python -m utils.authoring.execute` apply it; nbval's kernels inherit it.
- `configure_torch()`: the torch thread count for an interactive kernel (JupyterLab does not set
  OMP_NUM_THREADS). On machines with at most two cores (2-vCPU laptops, Colab) torch's default of one
  thread per core stalls whenever anything else wants a core: benchmarks/threads.py measured notebook
  00's ablation loop at 18 s with the default against 10 s with one thread while one other process was
  busy (6 s against 10 s on an idle machine; the stall has been seen at 68 s against 9.5 s). One thread
  is never the disaster, so small machines get one. Larger machines keep torch's default (not
  measured here). COURSE_TORCH_THREADS overrides the choice: a number, or "default".
"""

from __future__ import annotations

import os

CI_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
SMALL_MACHINE_CORES = 2


def apply_ci_env(environ: dict[str, str] | None = None) -> None:
    """Set CI's variables where they are not already set (the caller's choice wins)."""
    environ = os.environ if environ is None else environ
    for name, value in CI_ENV.items():
        environ.setdefault(name, value)


def torch_threads(cpu_count: int | None = None, override: str | None = None) -> int | None:
    """The thread count the course uses, or None for torch's default (see the module docstring)."""
    override = os.environ.get("COURSE_TORCH_THREADS") if override is None else override
    if override:
        return None if override == "default" else max(1, int(override))
    cores = os.cpu_count() if cpu_count is None else cpu_count
    return 1 if (cores or 1) <= SMALL_MACHINE_CORES else None


def configure_torch() -> None:
    """Apply `torch_threads()` once per process (called when the course loads a model)."""
    import torch

    threads = torch_threads()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    print("\n".join(f"{name}={value}" for name, value in CI_ENV.items()))
