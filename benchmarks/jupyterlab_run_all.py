"""Time "Run All" of each solution notebook in a real JupyterLab, next to `utils.authoring.execute`.

    python benchmarks/jupyterlab_run_all.py            # needs Debian's chromium (apt-get install chromium)

JupyterLab is started the way a learner starts it: no OMP_NUM_THREADS or MKL_NUM_THREADS in the
environment, so the thread count is the course's own choice (utils/env.py). Headless Chromium opens a
copy of each solution notebook (its outputs cleared), waits for the kernel, runs every cell with
JupyterLab's own "Run All" command and times it until the last cell has run. Then the same notebooks
are timed with `python -m utils.authoring.execute --benchmark` in CI's environment and in JupyterLab's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.jupyterlab import DevTools, Lab, isolated_jupyter_env, start_lab, stop  # noqa: E402


def run_all_seconds(paths: list[Path], work: Path) -> dict[str, float]:
    """Wall seconds of JupyterLab's Run All for each notebook, opened from a fresh copy."""
    root = work / "root"
    root.mkdir()
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(notebook, root / path.name)
    server, port = start_lab(root, isolated_jupyter_env(work, threads=None))
    browser = DevTools(work / "profile")
    seconds = {}
    try:
        for path in paths:
            lab = Lab(browser, f"http://127.0.0.1:{port}/lab/tree/{path.name}", path.name)
            lab.wait_for_kernel()
            start = time.perf_counter()
            lab.run_all_cells(timeout=600)
            seconds[path.name] = time.perf_counter() - start
            print(f"{path.name:<40}{seconds[path.name]:>10.1f}   (JupyterLab Run All)", flush=True)
    finally:
        browser.close()
        stop(server)
    return seconds


def main() -> None:
    paths = sorted((ROOT / "solutions").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as folder:
        run_all_seconds(paths, Path(folder))
    for env in ["ci", "jupyterlab"]:
        subprocess.run([sys.executable, "-m", "utils.authoring.execute", "--benchmark", "--env", env], cwd=ROOT, check=True)


if __name__ == "__main__":
    if not shutil.which("chromium"):
        sys.exit("needs chromium (Debian: apt-get install chromium)")
    main()
