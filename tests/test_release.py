"""A student release leaves out solutions and reference code, and its public checkers still work."""

import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from utils import build, release

ROOT = Path(__file__).resolve().parent.parent

CHECK_IN_RELEASE = textwrap.dedent('''
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]  # only the release's utils
    import utils
    from utils.checking import run_check
    assert utils.__file__.startswith({root!r}), utils.__file__

    def per_token_loss(logits, tokens):
        return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)

    def per_token_loss_unshifted(logits, tokens):
        return -logits[:, 1:].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)

    print(run_check("00.1", per_token_loss).message)
    print(run_check("00.1", per_token_loss_unshifted).message)
    print(run_check("00.1", per_token_loss, tier="hidden").message)
''')


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    destination = tmp_path_factory.mktemp("release") / "course"
    release.release(destination)
    return destination


def test_release_leaves_out_solutions_and_reference_code(released: Path):
    assert (released / "notebooks" / "00_orientation.ipynb").exists()
    assert (released / "utils" / "checking.py").exists()
    assert not (released / "solutions").exists()
    assert not (released / "utils" / "reference").exists()
    assert not [name for name in release.INSTRUCTOR_ONLY if (released / "utils" / name).exists()]
    shipped_text = "".join(p.read_text() for p in released.rglob("*") if p.suffix in (".py", ".ipynb", ".md"))
    for source in (ROOT / "solutions").glob("*.ipynb"):
        code = "\n".join(c.source for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code")
        blocks = "\n".join(match.group(0) for match in build._BLOCK.finditer(code))
        public = set(line.strip() for line in build._BLOCK.sub("", code).splitlines())  # shown to learners anyway
        solution_lines = [line.strip() for line in blocks.splitlines()
                          if len(line.strip()) > 25 and "###" not in line and line.strip() not in public]
        leaked = [line for line in solution_lines if line in shipped_text]
        assert not leaked, f"{source.name}: solution lines in the release: {leaked}"


def test_student_notebooks_import_nothing_a_release_leaves_out(released: Path):
    code = "\n".join(c.source for path in (released / "notebooks").glob("*.ipynb")
                     for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    for name in release.INSTRUCTOR_ONLY:
        assert f"utils.{name.removesuffix('.py')}" not in code and f"import {name.removesuffix('.py')}" not in code, name


def test_public_checkers_work_from_frozen_expectations(released: Path):
    script = CHECK_IN_RELEASE.format(root=str(released))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=released)
    assert result.returncode == 0, result.stderr
    passed, rejected, hidden = result.stdout.splitlines()
    assert passed == "00.1 passed (6 hidden cases)"
    assert rejected.startswith("00.1 failed on random case 1: values")
    assert hidden == "00.1: the hidden tier needs the reference solutions (utils/reference/), which a student release leaves out"


def test_release_refuses_a_non_empty_folder(tmp_path: Path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(SystemExit, match="is not empty"):
        release.release(tmp_path)
