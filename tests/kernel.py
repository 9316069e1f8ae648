"""Run notebook cells in a real Jupyter kernel, as a learner's JupyterLab would, for the notebook tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from utils.authoring.kernels import notebook_client

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CellRun:
    index: int
    source: str
    text: str  # everything the cell printed (stdout, stderr, text/plain)
    error: dict | None  # the error output, if the cell raised


def run_notebook(notebook: nbformat.NotebookNode, passes: int = 1, prelude: str = "", timeout_s: int = 900,
                 cwd: Path = ROOT / "notebooks") -> list[list[CellRun]]:
    """Execute every code cell `passes` times in order, in one kernel started in `cwd`.

    `prelude` is code run once before the notebook (it is not a cell of the result). Errors do not stop
    the run, so a test sees all of them; each pass gives one CellRun per code cell.
    """
    notebook = nbformat.from_dict(notebook)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(prelude or "pass"))
    client = notebook_client(notebook, cwd, timeout_s, allow_errors=True)
    runs = []
    with client.setup_kernel():
        client.execute_cell(notebook.cells[0], 0)
        if error := _error(notebook.cells[0].outputs):
            raise RuntimeError(f"the prelude failed: {error['ename']}: {error['evalue']}")
        for _ in range(passes):
            this_pass = []
            for index, cell in enumerate(notebook.cells[1:], start=1):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)
                    this_pass.append(CellRun(index - 1, cell.source, _text(cell.outputs), _error(cell.outputs)))
            runs.append(this_pass)
    return runs


def _text(outputs: list) -> str:
    parts = []
    for output in outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output and "text/plain" in output.data:
            parts.append(output.data["text/plain"] + "\n")
    return "".join(parts)


def _error(outputs: list) -> dict | None:
    return next((dict(o) for o in outputs if o.output_type == "error"), None)


def describe(run: CellRun) -> str:
    error = run.error or {}
    return f"cell {run.index} ({run.source.splitlines()[0] if run.source else ''!r}): {error.get('ename')}: {error.get('evalue')}"
