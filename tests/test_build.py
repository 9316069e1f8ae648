"""The student notebooks and reference modules are generated from solutions/ and cannot drift."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from utils.authoring import build

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def run_build(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "utils.authoring.build", "--root", str(root), *args],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    for folder in ["solutions", "notebooks", "utils/reference", "utils/exercises", "tests/known_wrong"]:
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_generated_files_are_up_to_date():
    result = run_build(ROOT, "--check")
    assert result.returncode == 0, result.stderr


def test_editing_a_solution_without_regenerating_fails_the_check(repo_copy: Path):
    source = repo_copy / "solutions" / "00_orientation.ipynb"
    notebook = json.loads(source.read_text())
    cell = next(c for c in notebook["cells"] if "### BEGIN SOLUTION" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]).replace("log_softmax(dim=-1)", "log_softmax(dim=-1) * 1.0")
    source.write_text(json.dumps(notebook, indent=1))

    result = run_build(repo_copy, "--check")
    assert result.returncode == 1
    assert "out of date: utils/reference/nb00.py" in result.stderr
    assert "out of date: notebooks/00_orientation.ipynb" not in result.stderr  # the stub hides the edit

    assert run_build(repo_copy).returncode == 0
    assert run_build(repo_copy, "--check").returncode == 0


def test_editing_a_student_notebook_by_hand_fails_the_check(repo_copy: Path):
    student = repo_copy / "notebooks" / "00_orientation.ipynb"
    student.write_text(student.read_text().replace("Orientation", "Orientation!", 1))
    result = run_build(repo_copy, "--check")
    assert result.returncode == 1 and "out of date: notebooks/00_orientation.ipynb" in result.stderr


@pytest.mark.parametrize("source", SOLUTIONS, ids=lambda p: p.name)
def test_student_notebook_has_a_stub_for_every_solution_block_and_no_outputs(source: Path):
    master = nbformat.read(source, as_version=4)
    student = nbformat.read(ROOT / "notebooks" / source.name, as_version=4)
    n_blocks = sum(c.source.count(build.BEGIN) for c in master.cells if c.cell_type == "code")
    student_code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert n_blocks >= 3
    assert student_code.count("raise NotImplementedError()") >= n_blocks
    assert build.BEGIN not in student_code and build.END not in student_code
    assert all(not c.outputs and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert [c.source for c in student.cells if c.cell_type == "markdown"] == \
        [c.source for c in master.cells if c.cell_type == "markdown"]


@pytest.mark.parametrize("source", SOLUTIONS, ids=lambda p: p.name)
def test_student_notebook_shows_no_instructor_asserts_or_test_markers(source: Path):
    master_code = "\n".join(c.source for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code")
    student = nbformat.read(ROOT / "notebooks" / source.name, as_version=4)
    student_code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert "assert " in master_code  # there is something to remove
    assert "assert " not in student_code and "NBVAL" not in student_code
    assert not any(set(c.metadata.get("tags", [])) & build.NBVAL_TAGS for c in student.cells)


def test_asserts_go_but_the_code_around_them_stays():
    code = "x = 1\nassert x == 1, (\n    'multi-line')\nfor i in range(2):\n    assert i < 2\nfor i in range(2):\n    y = i\n    assert y < 2\nprint(x)"
    assert build.instructor_lines_removed(code, Path("t.ipynb"), 0) == "x = 1\nfor i in range(2):\n    y = i\nprint(x)"


def test_a_cell_left_with_no_code_is_dropped():
    cells = [nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nassert 1 + 1 == 2\n# a comment"), nbformat.v4.new_code_cell("print(1)")]
    student = build.student_notebook(nbformat.v4.new_notebook(cells=cells), Path("t.ipynb"))
    assert [c.source for c in student.cells] == ["print(1)"]


def test_the_build_never_overwrites_a_notebook_the_learner_edited(repo_copy: Path):
    student = repo_copy / "notebooks" / "00_orientation.ipynb"
    notebook = nbformat.read(student, as_version=4)
    answer = next(c for c in notebook.cells if c.cell_type == "code" and "NotImplementedError" in c.source)
    answer.source = answer.source.replace("raise NotImplementedError()", "return 42  # my answer")
    nbformat.write(notebook, student)
    (repo_copy / "notebooks" / "my_notes.ipynb").write_text(student.read_text())  # a learner's own notebook
    source = repo_copy / "solutions" / "00_orientation.ipynb"
    source.write_text(source.read_text().replace("Orientation", "Orientation, revised", 1))  # the course changes

    result = run_build(repo_copy)
    assert result.returncode == 3
    assert "left alone: notebooks/00_orientation.ipynb" in result.stderr and "--force" in result.stderr
    assert "return 42  # my answer" in student.read_text()
    assert (repo_copy / "notebooks" / "my_notes.ipynb").exists()
    assert run_build(repo_copy, "--check").returncode == 1  # still reported as different

    assert run_build(repo_copy, "--force").returncode == 0
    assert "my answer" not in student.read_text() and "Orientation, revised" in student.read_text()


def test_an_unedited_notebook_that_was_run_is_regenerated(repo_copy: Path):
    student = repo_copy / "notebooks" / "00_orientation.ipynb"
    notebook = nbformat.read(student, as_version=4)
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="ready\n")]  # run, not edited
    nbformat.write(notebook, student)
    assert run_build(repo_copy).returncode == 0
    assert run_build(repo_copy, "--check").returncode == 0


@pytest.mark.parametrize("source", SOLUTIONS, ids=lambda p: p.name)
def test_every_exercise_in_a_notebook_is_checked_there(source: Path):
    from utils.checking import exercises

    number = source.name[:2]
    code = "\n".join(c.source for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code")
    ids = [i for i in exercises() if i.startswith(f"{number}.")]
    assert ids, f"{source.name} has no registered exercises"
    for exercise_id in ids:
        assert f'check("{exercise_id}", {exercises()[exercise_id].function})' in code


def test_stub_keeps_the_signature_docstring_and_indentation():
    cell = nbformat.v4.new_code_cell('def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n')
    student = build.student_notebook(nbformat.v4.new_notebook(cells=[cell]), Path("t.ipynb"))
    assert student.cells[0].source == 'def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n'


@pytest.mark.parametrize("source", [
    "def f():\n    ### BEGIN SOLUTION\n    return 1\n",
    "def f():\n    ### END SOLUTION\n    ### BEGIN SOLUTION\n",
    "def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n    ### END SOLUTION\n",
])
def test_unbalanced_markers_are_an_error_naming_the_cell(source: str):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x"), nbformat.v4.new_code_cell(source)])
    with pytest.raises(build.BuildError, match="t.ipynb, cell 1"):
        build.student_notebook(notebook, Path("t.ipynb"))


def test_exercise_cells_may_only_define_things():
    cell = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\nprint(f())\n")
    with pytest.raises(build.BuildError, match="cell 0, line 6: an exercise cell may hold only"):
        build.reference_module(nbformat.v4.new_notebook(cells=[cell]), Path("t.ipynb"))


def test_badly_named_solution_notebook_is_refused(tmp_path: Path):
    (tmp_path / "solutions").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "solutions" / "orientation.ipynb")
    result = run_build(tmp_path, "--check")
    assert result.returncode == 2 and "named NN_name.ipynb" in result.stderr


def test_a_generated_file_without_a_solution_is_reported_then_removed(repo_copy: Path):
    orphan = repo_copy / "notebooks" / "09_orphan.ipynb"
    shutil.copy(repo_copy / "notebooks" / "00_orientation.ipynb", orphan)
    result = run_build(repo_copy, "--check")
    assert result.returncode == 1 and "out of date: notebooks/09_orphan.ipynb" in result.stderr
    assert run_build(repo_copy).returncode == 0 and not orphan.exists()


def test_stored_solution_outputs_join_neighbouring_streams():
    # How a kernel chunks a cell's prints depends on timing; execute joins neighbouring stream outputs so that
    # re-executing a notebook gives no empty diff. A text-figure-text cell keeps its three outputs.
    from utils.authoring.execute import merge_adjacent_streams

    text = lambda s, name="stdout": nbformat.v4.new_output("stream", name=name, text=s)  # noqa: E731
    figure = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    merged = merge_adjacent_streams([text("a\n"), text("b\n"), figure, text("c\n"), text("d\n", "stderr")])
    assert [(o.output_type, o.get("text")) for o in merged] == [
        ("stream", "a\nb\n"), ("display_data", None), ("stream", "c\n"), ("stream", "d\n")]
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            outputs = cell.get("outputs", [])
            for before, after in zip(outputs, outputs[1:]):
                assert not (before.output_type == after.output_type == "stream" and before.name == after.name), path.name
