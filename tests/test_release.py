"""A student release leaves out solutions and reference code, and its public checkers still work."""

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from utils.authoring import build, release

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


def test_release_leaves_out_solutions_and_reference_code(released: Path):
    assert (released / "notebooks" / "00_orientation.ipynb").exists()
    assert (released / "utils" / "checking" / "__init__.py").exists()
    assert not (released / "solutions").exists()
    assert not (released / "utils" / "reference").exists()
    assert sorted(p.name for p in (released / "utils").iterdir() if p.name != "expected") == sorted(release.LEARNER_UTILS)
    for instructor_only in ["authoring", "zoo", "analysis", "reference"]:
        assert (ROOT / "utils" / instructor_only).is_dir() and not (released / "utils" / instructor_only).exists()
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
    for path in (released / "notebooks").glob("*.ipynb"):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        for module in _imported_utils_modules(code):
            top = module.split(".")[1] if "." in module else None
            assert top is None or _shipped(released, top), f"{path.name} imports {module}, which a release leaves out"


def test_learner_facing_modules_import_no_instructor_code():
    """Dependencies point one way: what a release ships never imports what it leaves out.

    The one exception is the checker's optional import of utils.reference (the self-study fallback),
    which it guards: a release has no reference and freezes the expected outputs instead.
    """
    for name in release.LEARNER_UTILS:
        path = ROOT / "utils" / name
        for source in ([path] if path.is_file() else sorted(path.rglob("*.py"))):
            for module in _imported_utils_modules(source.read_text()):
                top = module.split(".")[1] if "." in module else None
                assert top is None or top in {n.removesuffix(".py") for n in release.LEARNER_UTILS}, \
                    f"{source.relative_to(ROOT)} imports {module}"


def test_a_new_utils_module_is_left_out_by_default(tmp_path: Path):
    """The release copies an allow-list: a module nobody listed does not ship."""
    course = tmp_path / "course"
    shutil.copytree(ROOT, course, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "release", "build"))
    (course / "utils" / "grading_secrets.py").write_text("SECRET = 1\n")
    script = "import sys; from pathlib import Path; from utils.authoring import release; release.ROOT = Path.cwd(); " \
             "release.release(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], cwd=course, check=True, capture_output=True)
    assert (tmp_path / "out" / "utils" / "models.py").exists()
    assert not (tmp_path / "out" / "utils" / "grading_secrets.py").exists()


def test_release_readme_is_a_learners_readme(released: Path):
    readme = (released / "README.md").read_text()
    assert "<!-- instructor -->" in (ROOT / "README.md").read_text()
    for instructor_text in ["solutions/", "pytest", "utils.authoring", "COURSE_GRADING_SEED", "<!--"]:
        assert instructor_text not in readme, instructor_text
    assert "notebooks/00_orientation.ipynb" in readme and "load_model" in readme


def _imported_utils_modules(code: str) -> list[str]:
    """Every `utils...` module named by an import statement in `code` (IPython magics ignored)."""
    lines = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())
    modules = []
    for node in ast.walk(ast.parse(lines)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "utils":
            named = [a.name for a in node.names if node.module == "utils" and _is_utils_module(a.name)]
            modules += [node.module] + [f"utils.{name}" for name in named]
        elif isinstance(node, ast.Import):
            modules += [a.name for a in node.names if a.name.split(".")[0] == "utils"]
    return modules


def _is_utils_module(name: str) -> bool:
    return (ROOT / "utils" / name).is_dir() or (ROOT / "utils" / f"{name}.py").exists()


def _shipped(released: Path, name: str) -> bool:
    return (released / "utils" / name).is_dir() or (released / "utils" / f"{name}.py").exists()


def test_public_checkers_work_from_frozen_expectations(released: Path):
    script = CHECK_IN_RELEASE.format(root=str(released))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=released)
    assert result.returncode == 0, result.stderr
    passed, rejected, hidden = result.stdout.splitlines()
    assert passed == "00.1 passed (6 public cases)"
    assert rejected.startswith("00.1 failed on random case 1: values")
    assert hidden == "00.1: the hidden tier needs the reference solutions (utils/reference/), which a student release leaves out"


def test_release_refuses_a_non_empty_folder(tmp_path: Path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(SystemExit, match="is not empty"):
        release.release(tmp_path)
