"""A submission rebuilt on its master: the learner's answer cells, in the master's order, and nothing else of theirs.

    notebook = read_notebook(path.read_bytes())       # NotGradable with the reason if it cannot be read
    master = identify(notebook, masters)              # which course notebook it is, from its content
    answers, notes = find_answers(notebook, master)   # answer cells matched by exercise metadata or function name
    steps = plan(master, answers)                      # what the sandbox runs, cell by cell

Every cell that is not an answer cell comes from the master (as nbgrader's OverwriteCells restores
locked cells), so a learner cannot edit a check away. Answer cells are found by the exercise metadata
the build puts on them or, when that is gone, by the function they define, so reordered, deleted and
duplicated cells do not matter: a deleted answer leaves the master's stub, and of several cells defining
the same function the last one counts, as after "Run All". Check cells become "check" steps, which
the sandbox runs itself rather than as code (a redefined `check` is never called). Cells after the last
check cell are not run: they cannot change a verdict.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from utils.authoring.build import _python_lines
from utils.grading.masters import Master, code_cells, declared_ids

_DEFINITION = re.compile(r"^(?:async\s+)?def\s+(\w+)\s*\(|^(\w+)\s*=", re.MULTILINE)
_SEPARATORS = "_-. "


class NotGradable(Exception):
    """A submission that cannot be run: the message is the reason its row gives."""


@dataclass
class LearnerCell:
    index: int
    source: str
    exercise_ids: tuple[str, ...]
    defines: frozenset[str] = field(default_factory=frozenset)


# --- reading ----------------------------------------------------------------------------------------
def read_notebook(data: bytes) -> nbformat.NotebookNode:
    """The submission as an nbformat 4 notebook (older versions converted), or NotGradable saying why not."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise NotGradable(f"not valid JSON ({_first_line(err)})") from None
    if not isinstance(raw, dict) or not ("cells" in raw or "worksheets" in raw):
        raise NotGradable("not a notebook: the JSON has no cells")
    try:
        with warnings.catch_warnings():  # duplicate cell ids and the like: nbformat repairs them
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as err:  # nbformat's errors for unknown versions and broken structure vary
        raise NotGradable(f"not a notebook nbformat can read ({_first_line(err)})") from None
    if not isinstance(notebook.get("cells"), list):
        raise NotGradable("not a notebook: its cells are not a list")
    return notebook


def learner_cells(notebook: nbformat.NotebookNode) -> list[LearnerCell]:
    """The submission's code cells, tolerant of cells with a missing or list-valued source."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        cells.append(LearnerCell(index, source, declared_ids(cell), defined_names(source)))
    return cells


def defined_names(source: str) -> frozenset[str]:
    """Names a cell binds at top level with `def` or `=` (a regex reading if the cell is not valid Python)."""
    try:
        tree = ast.parse(_python_lines(source))
    except (SyntaxError, ValueError):
        return frozenset(a or b for a, b in _DEFINITION.findall(source))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


# --- which notebook ---------------------------------------------------------------------------------
def identify(notebook: nbformat.NotebookNode, masters: dict[str, Master]) -> Master | None:
    """The course notebook a submission is: its recorded source, else its exercise ids, else its function names."""
    source = str(notebook.get("metadata", {}).get("course", {}).get("source", ""))
    if Path(source).stem in masters:
        return masters[Path(source).stem]
    cells = learner_cells(notebook)
    by_ids = _best(masters, lambda m: sum(i[:2] == m.number for c in cells for i in c.exercise_ids))
    return by_ids or _best(masters, lambda m: len({f for s in m.slots for f in s.functions} & _all_defined(cells)))


def expected_master(relative: Path, masters: dict[str, Master]) -> Master | None:
    """The master a submission's path names ("alice_00_orientation.ipynb", "00_orientation/alice.ipynb"), if any."""
    text = relative.as_posix()
    return next((m for name, m in masters.items() if name in text), None)


def student_id(relative: Path, master: Master | None) -> str:
    """The student a file belongs to: its name without the notebook's, else the folder it is in."""
    stem = relative.stem.replace(master.name, "") if master else relative.stem
    student = stem.strip(_SEPARATORS)
    if not student and relative.parent != Path("."):
        student = relative.parent.as_posix()
    return student or relative.stem


def _best(masters: dict[str, Master], score) -> Master | None:
    scored = [(score(m), name) for name, m in masters.items()]
    best, name = max(scored, default=(0, ""))
    return masters[name] if best > 0 else None


def _all_defined(cells: list[LearnerCell]) -> set[str]:
    return set().union(*(c.defines for c in cells)) if cells else set()


# --- answers and the plan ---------------------------------------------------------------------------
def find_answers(notebook: nbformat.NotebookNode, master: Master) -> tuple[dict[int, str], list[str]]:
    """The learner's code for each answer cell of `master` (by its index), and notes on what was done.

    A cell answers a slot when its metadata declares one of the slot's exercises or it defines one of
    the slot's functions; cells that are a copy of a master cell never do. Several cells for one function:
    the last one counts. A slot with no cell keeps the master's stub.
    """
    fixed = {source.strip() for index, source in code_cells(master.student) if index not in _slot_cells(master)}
    cells = [c for c in learner_cells(notebook) if c.source.strip() not in fixed and not is_check_cell(c.source)]
    answers, notes, used = {}, [], set()
    for slot in master.slots:
        chosen = _cells_for_slot(slot, cells, notes)
        if not chosen:
            notes.append(f"{' and '.join(slot.exercise_ids)}: no answer cell found; the master's stub was run")
            continue
        used.update(c.index for c in chosen)
        answers[slot.cell] = "\n\n".join(c.source for c in chosen)
    dropped = [c for c in cells if c.index not in used and c.source.strip()]
    if dropped:
        notes.append(f"{len(dropped)} other code cell(s) of yours were replaced by the course's (only answer cells are graded: "
                     "put helpers inside your answer cell)")
    return answers, notes


def is_check_cell(source: str) -> bool:
    """A check cell, however the learner spaced or commented it (`f = check("00.2", f)  # passes now!`): one statement
    calling `check` with an exercise id, never an answer, since the sandbox runs the master's check instead."""
    try:
        body = ast.parse(_python_lines(source)).body
    except (SyntaxError, ValueError):
        return False
    if len(body) != 1 or not isinstance(body[0], (ast.Assign, ast.Expr)):
        return False
    call = body[0].value
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "check"
            and len(call.args) == 2 and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str))


def _cells_for_slot(slot, cells: list[LearnerCell], notes: list[str]) -> list[LearnerCell]:
    candidates = [c for c in cells if set(c.exercise_ids) & set(slot.exercise_ids) or c.defines & set(slot.functions)]
    chosen = []
    for function in slot.functions:
        defining = [c for c in candidates if function in c.defines]
        if len(defining) > 1:
            notes.append(f"{len(defining)} cells define {function}: the last one was graded")
        if defining and defining[-1] not in chosen:
            chosen.append(defining[-1])
    if not chosen and candidates:  # the marked cell no longer defines the function (renamed, emptied): run it as it is
        chosen = candidates[-1:]
    return sorted(chosen, key=lambda c: c.index)


def _slot_cells(master: Master) -> set[int]:
    return {slot.cell for slot in master.slots}


def plan(master: Master, answers: dict[int, str]) -> list[dict]:
    """The steps the sandbox runs: the master's code cells up to its last check cell, the learner's in the answer cells."""
    checks = {check.cell: check for check in master.checks}
    last = max(checks, default=-1)
    slots = {slot.cell: slot for slot in master.slots}
    steps = []
    for index, source in code_cells(master.student):
        if index > last:
            break
        if index in checks:
            check = checks[index]
            steps.append({"cell": index, "kind": "check", "exercise": check.exercise_id, "function": check.function,
                          "target": check.target, "label": f"the check of {check.exercise_id}"})
        elif index in slots:
            steps.append({"cell": index, "kind": "code", "source": answers.get(index, source), "answer": True,
                          "label": f"your answer to {' and '.join(slots[index].exercise_ids)}"})
        else:
            steps.append({"cell": index, "kind": "code", "source": source, "answer": False, "label": "a course cell"})
    return steps


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:160]
