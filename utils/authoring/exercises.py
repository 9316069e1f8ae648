"""Exercises are declared once, in the master notebook, and everything else is checked against that.

The exercise cell (the code cell holding a solution block) of solutions/NN_name.ipynb carries
metadata "exercise": {"id", "function", "title", "minutes", "points", "difficulty", "importance"} (a list
of them when one cell holds two exercises).
From it the build generates utils/exercises/catalog.json (what checkers and graders read: names,
minutes, points), and checks that
- the markdown cell introducing the exercise shows its header line (`header_line`);
- the exercise has a checker spec (utils/exercises/nbNN.py), a check cell in the master, and
  known-wrong implementations (tests/known_wrong/nbNN.py), and that no spec lacks a declaration.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
LEVELS = 3  # difficulty and importance run from 1 to 3
_ID = re.compile(r"^\d\d\.\d+$")


class DeclarationError(ValueError):
    pass


@dataclass(frozen=True)
class Declaration:
    id: str
    function: str
    title: str
    minutes: int
    points: int
    difficulty: int
    importance: int
    notebook: str


def declarations(master: nbformat.NotebookNode, source: Path) -> list[Declaration]:
    """The notebook's exercises, in order; every exercise cell must declare one, and only one."""
    found = []
    for index, cell in enumerate(master.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        meta = cell.metadata.get("exercise")
        metas = meta if isinstance(meta, list) else [meta]
        if not metas or not all(isinstance(m, dict) for m in metas):
            raise DeclarationError(f"{source}, cell {index}: an exercise cell needs metadata 'exercise' with "
                                   "id, function, title, minutes, points, difficulty, importance")
        introduction = next((c for c in reversed(master.cells[:index]) if c.cell_type == "markdown"), None)
        for fields in metas:
            try:
                declaration = Declaration(**fields, notebook=source.name)
            except TypeError as err:
                raise DeclarationError(f"{source}, cell {index}: exercise metadata: {err}") from None
            _validate(declaration, cell.source, f"{source}, cell {index}")
            header = header_line(declaration)
            if introduction is None or header not in introduction.source.splitlines():
                raise DeclarationError(f"{source}, cell {index}: the markdown above exercise {declaration.id} must "
                                       f"contain the line: {header}")
            found.append(declaration)
    return found


def header_line(d: Declaration) -> str:
    """The line every exercise's introduction shows, generated from its declaration."""
    def dots(level: int) -> str:
        return "●" * level + "○" * (LEVELS - level)

    points = f"{d.points} point" + ("s" if d.points != 1 else "")
    return (f"> **Exercise {d.id}** · difficulty {dots(d.difficulty)} · importance {dots(d.importance)} · "
            f"about {d.minutes} minutes · {points}")


def catalog_json(all_declarations: list[Declaration]) -> str:
    """utils/exercises/catalog.json: every exercise by id."""
    by_id = {d.id: {k: v for k, v in asdict(d).items() if k != "id"} for d in all_declarations}
    return json.dumps(by_id, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def problems(root: Path, all_declarations: list[Declaration]) -> list[str]:
    """Exercises that lack a checker spec, a check cell or known-wrong implementations, and specs without one."""
    declared = {d.id: d for d in all_declarations}
    found = []
    specs = _spec_ids(root)
    for d in all_declarations:
        number = d.id.split(".")[0]
        code = _master_code(root, d.notebook)
        if d.id not in specs:
            found.append(f"exercise {d.id}: no checker spec registers it in utils/exercises/nb{number}.py")
        if not re.search(rf'^(\w+ = )?check\("{re.escape(d.id)}", {d.function}\)$', code, re.MULTILINE):
            found.append(f"exercise {d.id}: solutions/{d.notebook} has no cell `{d.function} = check(\"{d.id}\", {d.function})`")
        if d.id not in _known_wrong_ids(root / "tests" / "known_wrong" / f"nb{number}.py"):
            found.append(f"exercise {d.id}: no known-wrong implementations in tests/known_wrong/nb{number}.py")
    found += [f"exercise {i}: a checker spec exists, but no notebook declares it" for i in sorted(specs - set(declared))]
    return found


def _validate(d: Declaration, code: str, where: str) -> None:
    if not _ID.match(d.id) or d.id[:2] != d.notebook[:2]:
        raise DeclarationError(f"{where}: exercise id {d.id!r} must look like {d.notebook[:2]}.N")
    if f"def {d.function}(" not in code:
        raise DeclarationError(f"{where}: exercise {d.id} declares function {d.function!r}, which the cell does not define")
    for name in ("minutes", "points"):
        if not isinstance(getattr(d, name), int) or getattr(d, name) < 1:
            raise DeclarationError(f"{where}: exercise {d.id}: {name} must be a positive integer")
    for name in ("difficulty", "importance"):
        if getattr(d, name) not in range(1, LEVELS + 1):
            raise DeclarationError(f"{where}: exercise {d.id}: {name} must be 1, 2 or 3")


def _master_code(root: Path, notebook: str) -> str:
    cells = nbformat.read(root / "solutions" / notebook, as_version=4).cells
    return "\n".join(c.source.strip() for c in cells if c.cell_type == "code")


def _spec_ids(root: Path) -> set[str]:
    """Ids registered by the spec modules, read from their source (`Exercise("00.1", ...)`)."""
    ids = set()
    for path in (root / "utils" / "exercises").glob("nb*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Exercise" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                ids.add(node.args[0].value)
    return ids


def _known_wrong_ids(path: Path) -> set[str]:
    """The keys of the WRONG dict in a known-wrong module, read from its source."""
    if not path.exists():
        return set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WRONG" for t in node.targets) \
                and isinstance(node.value, ast.Dict):
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    return set()
