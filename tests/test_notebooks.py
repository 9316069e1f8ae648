"""Solution notebooks store their checker verdicts, and nbval fails when a verdict changes."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
VERDICT = re.compile(r"^\d\d\.\d+ passed \(\d+ public cases\)$")
NBVAL_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "nbval-ignore-output", "nbval-skip")


def _check_cells(path: Path) -> list[nbformat.NotebookNode]:
    cells = nbformat.read(path, as_version=4).cells
    return [c for c in cells if c.cell_type == "code" and re.match(r'^(\w+) = check\("\d\d\.\d+", \1\)$', c.source.strip())]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_check_cell_stores_a_passing_verdict_that_nbval_compares(path: Path):
    cells = _check_cells(path)
    assert len(cells) >= 3
    for cell in cells:
        assert not any(marker in cell.source for marker in NBVAL_MARKERS)
        assert not set(cell.metadata.get("tags", [])) & set(NBVAL_MARKERS)
        lines = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream").splitlines()
        assert len(lines) == 1 and VERDICT.match(lines[0]), f"{cell.source}: {lines}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_is_executed_small_and_quiet(path: Path):
    assert path.stat().st_size < 500_000
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in cells), "run every cell before committing"
    stderr = [c.source.splitlines()[0] for c in cells for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, f"cells writing to stderr (warnings, progress bars): {stderr}"
    errors = [c.source.splitlines()[0] for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_nbval_fails_when_a_stored_verdict_no_longer_matches(tmp_path: Path):
    source = ROOT / "solutions" / "00_orientation.ipynb"
    notebook = nbformat.read(source, as_version=4)
    cell = _check_cells(source)[0]
    target = next(c for c in notebook.cells if c.get("id") == cell.get("id"))
    target.outputs[0]["text"] = target.outputs[0]["text"].replace("passed", "passed?")
    nbformat.write(notebook, tmp_path / source.name)
    shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", tmp_path)

    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "--nbval",
                             "--nbval-current-env", str(tmp_path / source.name)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert "passed?" in result.stdout and "1 failed" in result.stdout
