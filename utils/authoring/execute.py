"""Run solution notebooks top to bottom, as CI does, to store their outputs or to time them.

    python -m utils.authoring.execute solutions/03_induction_heads.ipynb   # execute in place, then regenerate
    python -m utils.authoring.execute --benchmark                          # time every solution notebook
    python -m utils.authoring.execute --benchmark --env jupyterlab         # ... in a kernel as JupyterLab starts it

The environment matches CI: one torch thread, no hub access, no progress bars. In-place execution
stores the outputs that nbval later compares (views keep no circuitsvis bundle: utils/viz.py);
the benchmark runs a copy and leaves the file alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat

from utils.env import CI_ENV

ROOT = Path(__file__).resolve().parents[2]


def execute(path: Path, timeout_s: int = 600, env: str = "ci") -> tuple[nbformat.NotebookNode, float]:
    """Execute a notebook in its own folder; return it with outputs, and the wall time in seconds.

    env="ci" runs the kernel in CI's environment (utils.env.CI_ENV); env="jupyterlab" runs it the way
    JupyterLab starts kernels, with no thread settings in the environment, so the course's own choice
    (utils.env.configure_torch) is what applies.
    """
    from utils.authoring.kernels import notebook_client

    kernel_env = {**os.environ, **CI_ENV}
    if env == "jupyterlab":
        kernel_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        kernel_env.update(HF_HUB_OFFLINE="1", TQDM_DISABLE="1")  # offline as a workshop is; bars cost nothing
    notebook = nbformat.read(path, as_version=4)
    client = notebook_client(notebook, path.parent, timeout_s)

    start = time.perf_counter()
    client.execute(env=kernel_env)
    seconds = time.perf_counter() - start
    notebook.metadata.pop("widgets", None)  # saved widget state: useless without a kernel, and bulky
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # timestamps would make every run a diff
        if cell.cell_type == "code":
            cell.outputs = merge_adjacent_streams(cell.outputs)
    return notebook, seconds


def merge_adjacent_streams(outputs: list) -> list:
    """Join consecutive stream outputs of one name (stdout, stderr) into one.

    How a kernel chunks a cell's prints depends on timing, so two runs of the same cell can store one
    stream output or two: a diff with nothing in it. Joining only neighbours keeps the display order
    (text, figure, text stays three outputs); nbval compares the joined text either way.
    """
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.authoring.execute", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: all)")
    parser.add_argument("--benchmark", action="store_true", help="time the notebooks without changing them")
    parser.add_argument("--env", choices=["ci", "jupyterlab"], default="ci",
                        help="the kernel's environment: CI's, or JupyterLab's (no thread variables); benchmark only")
    args = parser.parse_args(argv)
    if args.env != "ci" and not args.benchmark:
        parser.error("--env jupyterlab only times notebooks (--benchmark); stored outputs come from CI's environment")
    paths = args.notebooks or sorted((ROOT / "solutions").glob("*.ipynb"))
    print(f"{'notebook':<40}{'seconds':>10}   (kernel environment: {args.env})")
    for path in paths:
        notebook, seconds = execute(path.resolve(), env=args.env)
        print(f"{path.name:<40}{seconds:>10.1f}", flush=True)
        if not args.benchmark:
            nbformat.write(notebook, path)
    if not args.benchmark:
        from utils.authoring import build

        build.build(ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
