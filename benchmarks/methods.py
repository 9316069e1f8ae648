"""Seconds per method in notebook 07's part B: every method of the course scoring ioi-lm's 16 heads.

    python benchmarks/methods.py            # runs notebook 07 in CI's environment, about a minute

The notebook records each method's wall time (`method_seconds`, after the clean forward pass with cache
that all methods share) but prints only its cost in forward and backward passes, which is the same on
every machine; this script runs the solved notebook top to bottom and prints the seconds, best of
`--repeats` runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import nbformat

from utils.authoring.kernels import notebook_client
from utils.env import CI_ENV

NOTEBOOK = Path(__file__).resolve().parents[1] / "solutions" / "07_capstone.ipynb"


def method_seconds() -> dict[str, float]:
    """One run of notebook 07: {method: seconds}."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import json; print(json.dumps(method_seconds))"))
    notebook_client(notebook, NOTEBOOK.parent, 600).execute(env={**os.environ, **CI_ENV})
    return json.loads(notebook.cells[-1].outputs[0]["text"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    runs = [method_seconds() for _ in range(args.repeats)]
    print(f"{'method':<30}{'seconds (64 prompts, 16 heads)':>32}")
    for name in runs[0]:
        print(f"{name:<30}{min(run[name] for run in runs):>32.3f}")


if __name__ == "__main__":
    main()
