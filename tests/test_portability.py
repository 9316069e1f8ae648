"""Stored outputs must not depend on floating-point noise: the solution notebooks also pass nbval under
torch's portable kernels (ATEN_CPU_CAPABILITY=default), which change the noise as another CPU would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_passes_nbval_with_portable_cpu_kernels(path: Path):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
                             "--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
                             "-q", str(path.relative_to(ROOT))], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout[-4000:]
