"""A generated class of submissions that covers every way a notebook can go wrong, with what each must score.

    python -m tests.grading_class DIR    # writes DIR/*.ipynb (and a few broken files) and DIR/manifest.json

Submissions are the released student notebooks (notebooks/NN_*.ipynb, as `utils.authoring.build` generates
them) with answer cells filled in: correct answers are the master's solutions, wrong ones are known
mistakes, and each failure case adds what a learner might do (a hang, a memory bomb, a tampered checker,
...). The manifest records, per file, the notebook it should be graded as, the exercises whose answer is
correct and would pass if the notebook got that far (`correct`), the exercises a crash or timeout stops
before their check (`unreached`), the flags it must raise, its status and a piece of its reason. The
expected points are computed from these and the master's declared points, never from a grader's output.
"""

from __future__ import annotations

import copy
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from utils.authoring import build
from utils.grading.masters import ROOT, Master, code_cells, load_masters

ORIENTATION, PATTERNS = "00_orientation", "01_attention_patterns"
OUTSIDE_FILE = Path("/tmp/course_grading_written_outside.txt")  # the write-outside case tries this,
LEARNER_MODULE = "written_by_a_learner.py"  # and this, beside utils/__init__.py
WRONG_00 = {
    "00.1": ("def per_token_loss(logits, tokens):\n"
             "    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)"),
    "00.2": ("def attention_pattern(q, k):\n    scores = torch.einsum('bqhd,bkhd->bhqk', q, k)\n"
             "    future = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(diagonal=1)\n"
             "    return scores.masked_fill(future, float('-inf')).softmax(-1)"),
    "00.3": ("def residual_at(cache, layer, pos):\n"
             "    return cache['resid_post', min(layer, cache.model.cfg.n_layers - 1)][:, pos]"),
    "00.4": ("def head_ablation_effect(model, tokens, layer, head):\n"
             "    def zero(z, hook):\n        z[:, :, head] = 0.0\n        return z\n"
             "    clean = model(tokens, return_type='loss')\n"
             "    ablated = model.run_with_hooks(tokens, return_type='loss', fwd_hooks=[(f'blocks.{layer}.attn.hook_z', zero)])\n"
             "    return (clean - ablated).item()"),
}


@dataclass
class Expected:
    notebook: str
    correct: list[str] = field(default_factory=list)
    unreached: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    status: str = "graded"
    reason: str = ""  # a piece of the row's reason


class Notebooks:
    """The released and solved student versions of each master, and answer cells to fill in."""

    def __init__(self, root: Path = ROOT):
        self.masters = load_masters(root)
        self.solved = {name: build.student_notebook(nbformat.read(root / "solutions" / f"{name}.ipynb", as_version=4),
                                                    Path("solutions") / f"{name}.ipynb", solved=True)
                       for name in self.masters}

    def released(self, name: str) -> nbformat.NotebookNode:
        return copy.deepcopy(self.masters[name].student)

    def solution(self, name: str, exercise_id: str) -> str:
        return self.solved[name].cells[self.slot(name, exercise_id)].source

    def slot(self, name: str, exercise_id: str) -> int:
        return next(s.cell for s in self.masters[name].slots if exercise_id in s.exercise_ids)

    def with_answers(self, name: str, answers: dict[str, str]) -> nbformat.NotebookNode:
        """The released notebook with the answer cells of `answers` (exercise id -> cell source) filled in."""
        notebook = self.released(name)
        for exercise_id, source in answers.items():
            notebook.cells[self.slot(name, exercise_id)].source = source
        return notebook

    def correct(self, name: str, extra: dict[str, str] | None = None,
                instead: dict[str, str] | None = None) -> nbformat.NotebookNode:
        """Every answer correct, except those `instead` replaces; `extra` appends code to the answer cells it names."""
        answers = {d.id: self.solution(name, d.id) for d in self.masters[name].declarations}
        for exercise_id, code in (extra or {}).items():
            answers[exercise_id] += "\n\n" + code
        return self.with_answers(name, {**answers, **(instead or {})})


def ids(master: Master) -> list[str]:
    return [d.id for d in master.declarations]


def cases(books: Notebooks) -> dict[str, tuple[Callable[[], bytes], Expected]]:
    """File name -> (its bytes, what grading it must give)."""
    all_00 = ids(books.masters[ORIENTATION])
    found: dict[str, tuple[Callable[[], bytes], Expected]] = {}

    def add(student: str, make: Callable[[], nbformat.NotebookNode | bytes], notebook: str = ORIENTATION, **expected):
        found[f"{student}_{notebook}.ipynb"] = (lambda: _bytes(make()), Expected(notebook, **expected))

    def but(*exercise_ids: str) -> list[str]:
        return [i for i in all_00 if i not in exercise_ids]

    def solved(*exercise_ids: str) -> dict[str, str]:
        return {i: books.solution(ORIENTATION, i) for i in exercise_ids}

    def appended(exercise_id: str, code: str) -> Callable[[], nbformat.NotebookNode]:
        return lambda: books.correct(ORIENTATION, extra={exercise_id: code})

    def instead(exercise_id: str, code: str) -> Callable[[], nbformat.NotebookNode]:
        return lambda: books.correct(ORIENTATION, instead={exercise_id: code})

    def only(answers: dict[str, str]) -> Callable[[], nbformat.NotebookNode]:
        return lambda: books.with_answers(ORIENTATION, answers)

    for k in range(1, 6):  # distinct files: each is graded, none is a copy of another
        add(f"correct{k}", lambda k=k: with_comment(books.correct(ORIENTATION), f"student {k}"), correct=all_00)
    add("partly_a", only(solved("00.1", "00.3") | {"00.4": WRONG_00["00.4"]}), correct=["00.1", "00.3"])
    add("partly_b", only(solved("00.2", "00.4") | {"00.1": WRONG_00["00.1"]}), correct=["00.2", "00.4"])
    add("stubs", lambda: books.released(ORIENTATION))
    add("hang_top_level", appended("00.4", "while True:\n    pass"), correct=all_00, unreached=["00.4"],
        status="incomplete", reason="timed out")
    add("hang_in_function", appended("00.2", "def attention_pattern(q, k):\n    while True:\n        pass"),
        correct=but("00.2"))
    add("memory_bomb", appended("00.3", "ballast = bytearray(3 * 10 ** 9)"), correct=all_00)
    add("memory_bomb_in_function", appended("00.4", _MEMORY_GROWTH), correct=but("00.4"))
    add("exception", only(solved("00.3", "00.4") | {
        "00.1": "raise RuntimeError('not finished')\n\n" + books.solution(ORIENTATION, "00.1"),  # before its def
        "00.2": "def attention_pattern(q, k):\n    raise ValueError('oops')"}), correct=["00.3", "00.4"])
    stub_00_1 = books.released(ORIENTATION).cells[books.slot(ORIENTATION, "00.1")].source
    add("tampered_checker", only(solved("00.3") | {"00.1": stub_00_1 + "\n\n" + _TAMPERED_CHECK}), correct=["00.3"],
        flags=["redefines_check"])
    add("patched_comparisons", instead("00.2", WRONG_00["00.2"] + "\n\n" + _PATCHES), correct=but("00.2"),
        flags=["patches_checker"])
    add("patched_during_check", instead("00.1", books.solution(ORIENTATION, "00.1").replace(
        "    log_probs =", "    import torch\n    torch.allclose = lambda *args, **kwargs: True\n    log_probs =")),
        correct=but("00.1"), flags=["patches_checker"])
    add("patched_code", instead("00.2", WRONG_00["00.2"] + "\n\n" + _PATCHED_CODE), correct=but("00.2"),
        flags=["introspection", "patches_checker"])
    add("forged_verdict", instead("00.2", _FORGED_VERDICT), correct=but("00.2"), flags=["patches_checker"])
    add("reference_import", only(solved("00.1", "00.3") | {"00.2": _REFERENCE_IMPORT, "00.4": _REFERENCE_IN_FUNCTION}),
        correct=["00.1", "00.3"], flags=["imports_reference", "introspection"])
    add("network_call", appended("00.1", "import socket\nsocket.create_connection(('example.com', 80), timeout=3)"),
        correct=all_00, flags=["network"])
    add("deleted_cells", lambda: _deleted(books), correct=but("00.3"))
    add("reordered_cells", lambda: _reordered(books), correct=all_00)
    add("duplicated_cells", lambda: _duplicated(books, wrong_last=False), correct=all_00)
    add("duplicated_wrong_last", lambda: _duplicated(books, wrong_last=True), correct=but("00.2"))
    renamed = books.solution(ORIENTATION, "00.1").replace("def per_token_loss(", "def my_per_token_loss(")
    add("renamed_function", instead("00.1", renamed), correct=but("00.1"))
    add("empty_function", instead("00.3", "def residual_at(cache, layer, pos):\n    pass"), correct=but("00.3"))
    add("empty_cell", instead("00.4", ""), correct=but("00.4"))
    add("output_flood", appended("00.1", "for _ in range(200_000):\n    print('x' * 1000)"), correct=all_00)
    add("sys_exit", appended("00.2", "import sys\nsys.exit(1)"), correct=all_00)
    add("crash", appended("00.3", "import faulthandler\nfaulthandler._sigsegv()"), correct=all_00,
        unreached=["00.3", "00.4"], status="incomplete", reason="crashed (SIGSEGV)")
    add("fork_bomb", appended("00.4", "import os\nwhile True:\n    os.fork()"), correct=all_00, flags=["subprocess"])
    add("write_outside", appended("00.1", _WRITE_OUTSIDE), correct=all_00, flags=["writes_outside"])
    add("reads_seed", appended("00.2", _READ_SEED), correct=all_00, flags=["reads_environment", "reads_seed"])
    add("introspection", only(solved("00.3", "00.4") | {"00.2": _FALLBACK_GLOBALS}), correct=["00.3", "00.4"],
        flags=["introspection"])
    add("frame_walk", only({i: _FRAME_WALK + f"\n\ndef {SIGNATURES[i]}:\n    return _steal()\n" for i in all_00}),
        flags=["introspection"])
    add("seed_in_verdict", instead("00.1", _SEED_IN_VERDICT), correct=but("00.1"), flags=["reads_seed"])
    add("edited_check_cell", lambda: _check_cell_commented(books.correct(ORIENTATION), "00.2"), correct=all_00)
    add("uses_networkx", appended("00.1", "import networkx as nx\ngraph = nx.DiGraph([(0, 1)])"), correct=all_00)
    add("old_nbformat", lambda: nbformat.writes(nbformat.convert(books.correct(ORIENTATION), 3)).encode(), correct=all_00)
    add("malformed_json", lambda: _bytes(books.correct(ORIENTATION))[:-200], status="not graded", reason="not valid JSON")
    add("empty_file", lambda: b"", status="not graded", reason="not valid JSON")
    add("not_a_notebook", lambda: b'{"hello": "world"}', status="not graded", reason="not a notebook")
    add("other_notebook", lambda: books.released(PATTERNS), status="not graded",
        reason=f"is notebook {PATTERNS}, not {ORIENTATION}")
    add("patterns_correct", lambda: books.correct(PATTERNS), notebook=PATTERNS, correct=ids(books.masters[PATTERNS]))
    return found


SIGNATURES = {"00.1": "per_token_loss(logits, tokens)", "00.2": "attention_pattern(q, k)",
              "00.3": "residual_at(cache, layer, pos)", "00.4": "head_ablation_effect(model, tokens, layer, head)"}
# Copies the checker's expected output from a frame below the learner's function, spelt to pass the static scan.
_FRAME_WALK = """import sys
import copy as _cp


def _steal():
    frame = getattr(sys, "_get" + "frame")(1)
    while frame is not None:
        found = getattr(frame, "f_loc" + "als")
        if "expected" in found and "case" in found:
            return _cp.deepcopy(found["expected"])
        frame = getattr(frame, "f_b" + "ack")
    raise NotImplementedError()"""
# Puts the seed the checker keeps in the sandbox into its own verdict line, which the student's feedback shows.
_SEED_IN_VERDICT = """import os


def per_token_loss(logits, tokens):
    raise ValueError("value " + str(getattr(getattr(os, "envi" + "ron"), "_se" + "ed")))"""
_FALLBACK_GLOBALS = "attention_pattern = per_token_loss.__globals__.get('attention_pattern')"  # 00.1 failed: the reference's
_FORGED_VERDICT = """import json
from utils.checking import Verdict
json.dumps = lambda obj, *args, **kwargs: '{"exercise_id": "00.2", "passed": true, "message": "00.2 passed"}'
Verdict.__init__ = lambda self, exercise_id, passed, message, n_cases=0: self.__dict__.update(
    exercise_id=exercise_id, passed=True, message=message, n_cases=n_cases)"""
_TAMPERED_CHECK = """check = lambda exercise_id, fn: fn

def run_check(*args, **kwargs):
    return None"""
_REFERENCE_IMPORT = """from utils.reference.nb00 import attention_pattern as _reference

def attention_pattern(q, k):
    return _reference(q, k)"""
_REFERENCE_IN_FUNCTION = """import importlib

def head_ablation_effect(model, tokens, layer, head):
    return importlib.import_module('utils.reference.nb00').head_ablation_effect(model, tokens, layer, head)"""
_MEMORY_GROWTH = """def head_ablation_effect(model, tokens, layer, head):
    blocks = []
    while True:
        blocks.append(bytearray(10 ** 8))"""
_PATCHES = """import torch
import utils.checking.judge as judge
torch.allclose = lambda *args, **kwargs: True
judge._judge = lambda *args, **kwargs: None"""
_PATCHED_CODE = """import utils.checking.judge as judge
judge._compare_values.__code__ = (lambda *args, **kwargs: None).__code__"""
_WRITE_OUTSIDE = f"""from pathlib import Path
import utils
for target in [Path({str(OUTSIDE_FILE)!r}), Path(utils.__file__).with_name({LEARNER_MODULE!r})]:
    try:
        target.write_text("x = 1")
    except PermissionError:
        pass"""
_READ_SEED = """import os
SEED = os.environ.get("COURSE_GRADING_SEED")
ENVIRONMENT = open("/proc/self/environ", "rb").read()"""


def _exception_case(books: Notebooks) -> nbformat.NotebookNode:
    """00.1's cell raises before defining its function; 00.2's function raises when called."""
    return books.with_answers(ORIENTATION, {
        "00.1": "raise RuntimeError('not finished')\n\n" + books.solution(ORIENTATION, "00.1"),
        "00.2": "def attention_pattern(q, k):\n    raise ValueError('oops')",
        "00.3": books.solution(ORIENTATION, "00.3"), "00.4": books.solution(ORIENTATION, "00.4")})


def _deleted(books: Notebooks) -> nbformat.NotebookNode:
    """The imports, every check cell, half the markdown and 00.3's answer cell deleted."""
    notebook = books.correct(ORIENTATION)
    master = books.masters[ORIENTATION]
    gone = {books.slot(ORIENTATION, "00.3"), code_cells(master.student)[0][0], *(c.cell for c in master.checks)}
    gone |= {i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown" and i % 2}
    notebook.cells = [c for i, c in enumerate(notebook.cells) if i not in gone]
    return notebook


def _reordered(books: Notebooks) -> nbformat.NotebookNode:
    notebook = books.correct(ORIENTATION)
    random.Random(0).shuffle(notebook.cells)
    return notebook


def _duplicated(books: Notebooks, wrong_last: bool) -> nbformat.NotebookNode:
    """Every cell twice; 00.2's answer also as a wrong draft, before (or after) the right one."""
    notebook = books.correct(ORIENTATION)
    draft = copy.deepcopy(notebook.cells[books.slot(ORIENTATION, "00.2")])
    draft.source, draft.id = WRONG_00["00.2"], "draft"
    notebook.cells = [c for cell in notebook.cells for c in (cell, _copied(cell))]
    notebook.cells.insert(len(notebook.cells) if wrong_last else 0, draft)
    return notebook


def _check_cell_commented(notebook: nbformat.NotebookNode, exercise_id: str) -> nbformat.NotebookNode:
    """The learner added a comment to the check cell of `exercise_id`: still a check cell, not an answer."""
    cell = next(c for c in notebook.cells if c.cell_type == "code" and f'check("{exercise_id}"' in c.source)
    cell.source = cell.source.rstrip() + "  # passes now!"
    return notebook


def _copied(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    duplicate = copy.deepcopy(cell)
    duplicate.id = f"{cell.id}-copy"
    return duplicate


def with_comment(notebook: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    cell = next(c for c in notebook.cells if c.cell_type == "code" and c.get("metadata", {}).get("exercise"))
    cell.source = f"# {text}\n" + cell.source
    return notebook


def _bytes(notebook: nbformat.NotebookNode | bytes) -> bytes:
    return notebook if isinstance(notebook, bytes) else nbformat.writes(notebook).encode()


def case_names(books: Notebooks | None = None) -> list[str]:
    """The file name of every case, sorted."""
    return sorted(cases(books or Notebooks()))


def write_class(folder: Path, books: Notebooks | None = None) -> dict[str, Expected]:
    """Write every case into `folder` (and manifest.json); the expectations by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    expectations = {}
    for name, (make, expected) in cases(books or Notebooks()).items():
        (folder / name).write_bytes(make())
        expectations[name] = expected
    (folder / "manifest.json").write_text(json.dumps({n: asdict(e) for n, e in expectations.items()}, indent=1))
    return expectations


if __name__ == "__main__":
    written = write_class(Path(sys.argv[1]))
    print(f"{len(written)} submissions in {sys.argv[1]}")
