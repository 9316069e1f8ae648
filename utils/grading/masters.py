"""Each notebook's master as a grader sees it: the released student version, its answer and check cells, its points.

The master of `00_orientation` is solutions/00_orientation.ipynb, turned into the student version exactly
as `python -m utils.authoring.build` writes notebooks/ (stubs in the answer cells, instructor lines gone).
Its exercises, with their points, are the ones the master's cell metadata declares
(utils/authoring/exercises.py): points are declared there once and nowhere else.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from utils.authoring import build, exercises

ROOT = Path(__file__).resolve().parents[2]
CHECK_CELL = re.compile(r'^(?:(\w+) = )?check\("(\d\d\.\d+)", (\w+)\)$')
# What else decides a verdict besides the master: the checker and the notebook's checker spec.
_CHECKER_SOURCES = ("utils/checking/*.py", "utils/exercises/_inputs.py")


@dataclass(frozen=True)
class AnswerSlot:
    """A cell of the master where the learner writes code: the exercises it declares and their functions."""

    cell: int  # index in the student notebook
    exercise_ids: tuple[str, ...]
    functions: tuple[str, ...]


@dataclass(frozen=True)
class CheckCell:
    """`target = check("00.1", function)`: the cell whose verdict scores an exercise."""

    cell: int
    exercise_id: str
    function: str
    target: str


@dataclass(frozen=True)
class Master:
    name: str  # "00_orientation"
    student: nbformat.NotebookNode  # the released student version
    declarations: tuple[exercises.Declaration, ...]
    slots: tuple[AnswerSlot, ...]
    checks: tuple[CheckCell, ...]
    fingerprint: str  # changes when the master, its checker spec or the checker changes

    @property
    def number(self) -> str:
        return self.name[:2]

    @property
    def max_points(self) -> int:
        return sum(d.points for d in self.declarations)

    def points(self, exercise_id: str) -> int:
        return next(d.points for d in self.declarations if d.id == exercise_id)


def load_masters(root: Path = ROOT) -> dict[str, Master]:
    """Every master in `root`/solutions, by name."""
    return {path.stem: load_master(path, root) for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))}


def load_master(path: Path, root: Path = ROOT) -> Master:
    relative = path.relative_to(root)
    solved = nbformat.read(path, as_version=4)
    student = build.student_notebook(solved, relative)
    return Master(name=path.stem, student=student, declarations=tuple(exercises.declarations(solved, relative)),
                  slots=tuple(_answer_slots(student)), checks=tuple(_check_cells(student)),
                  fingerprint=_fingerprint(path, root))


def code_cells(notebook: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(index, source) of every code cell."""
    return [(index, cell.source) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


def declared_ids(cell: nbformat.NotebookNode) -> tuple[str, ...]:
    """The exercise ids a cell's metadata declares (none for a cell that is not an answer cell)."""
    meta = cell.get("metadata", {}).get("exercise")
    metas = meta if isinstance(meta, list) else [meta]
    return tuple(str(m["id"]) for m in metas if isinstance(m, dict) and "id" in m)


def _answer_slots(student: nbformat.NotebookNode) -> list[AnswerSlot]:
    slots = []
    for index, cell in enumerate(student.cells):
        meta = cell.metadata.get("exercise") if cell.cell_type == "code" else None
        if meta:
            metas = meta if isinstance(meta, list) else [meta]
            slots.append(AnswerSlot(index, tuple(m["id"] for m in metas), tuple(m["function"] for m in metas)))
    return slots


def _check_cells(student: nbformat.NotebookNode) -> list[CheckCell]:
    found = []
    for index, source in code_cells(student):
        if match := CHECK_CELL.match(source.strip()):
            target, exercise_id, function = match.groups()
            found.append(CheckCell(index, exercise_id, function, target or function))
    return found


def _fingerprint(path: Path, root: Path) -> str:
    digest = hashlib.sha256(path.read_bytes())
    spec = root / "utils" / "exercises" / f"nb{path.name[:2]}.py"
    for source in sorted({spec, *(p for pattern in _CHECKER_SOURCES for p in root.glob(pattern))}):
        if source.exists():
            digest.update(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]
