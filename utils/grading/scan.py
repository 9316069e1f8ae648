"""Flags from reading a learner's code: what a submission tries, whatever it achieves.

    scan(source) -> [Flag("redefines_check", "line 3: def check(exercise_id, fn):"), ...]

The grader runs a submission as it is and scores what it really does; these flags tell the instructor
where to look. They come from the answer cells' syntax tree (a regex reading when a cell is not valid
Python), and the sandbox adds what it saw at run time (utils/grading/guard.py) under the same names:

| flag | the code ... |
|---|---|
| redefines_check | defines or rebinds `check` / `run_check` |
| imports_reference | imports the reference solutions (utils.reference), or asks the checker for them |
| patches_checker | assigns to attributes of the checker, torch, numpy or builtins (e.g. `torch.allclose = ...`), uses mock |
| reads_seed | names the grading seed's variable (COURSE_GRADING_SEED) or /proc/self/environ |
| reads_environment | reads os.environ or os.getenv |
| touches_verdict_log | names the verdict log or tier variables (COURSE_CHECK_LOG, COURSE_CHECK_TIER) |
| introspection | walks frames, globals, closures, sys.modules or the garbage collector; runs dynamic code; uses ctypes |
| network | imports a network module |
| subprocess | starts processes (subprocess, os.system, os.fork, shell escapes, ...) |

and three that only the sandbox reports: `writes_outside` (a write outside the working copy),
`reads_course_files` (a read of the solutions, tests, git history, submissions or grading folders) and
`sandbox_escape` (changing a resource limit, signalling another process).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from utils.authoring.build import _python_lines

CHECKER_NAMES = {"check", "run_check"}
PATCH_ROOTS = {"torch", "np", "numpy", "utils", "checking", "judge", "compare", "isolation", "failures", "spec",
               "builtins", "math", "nn", "F", "json", "dataclasses", "Verdict", "Exercise"}
PATCH_ATTRIBUTES = {"allclose", "isclose", "equal", "assert_close", "array_equal", "__eq__", "__code__", "check",
                    "run_check", "_judge", "_run_case", "_call", "_compare_values", "_check_structure", "_REGISTRY"}
REFERENCE_HELPERS = {"reference", "reference_function", "reference_outputs", "_expected_outputs", "frozen_expected"}
INTROSPECTION_ATTRIBUTES = {"__globals__", "__closure__", "__code__", "__builtins__", "f_back", "f_locals", "f_globals",
                            "tb_frame", "gi_frame", "cr_frame", "_getframe", "currentframe", "getouterframes", "stack",
                            "modules", "get_objects", "get_referrers", "get_referents"}
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "globals", "vars"}
MODULE_FLAGS = {"socket": "network", "urllib": "network", "http": "network", "requests": "network", "httpx": "network",
                "aiohttp": "network", "ftplib": "network", "smtplib": "network", "websocket": "network",
                "subprocess": "subprocess", "multiprocessing": "subprocess", "pty": "subprocess",
                "_posixsubprocess": "subprocess", "gc": "introspection", "ctypes": "introspection",
                "inspect": "introspection", "importlib": "introspection", "unittest": "patches_checker"}
OS_PROCESS_CALLS = {"system", "popen", "fork", "forkpty", "kill", "killpg", "posix_spawn", "posix_spawnp", "execv",
                    "execve", "execl", "execlp", "execvp", "execvpe", "spawnl", "spawnv", "spawnve", "spawnlp"}
STRING_FLAGS = [(re.compile(r"GRADING_SEED|/proc/(self|\d+)/environ"), "reads_seed"),
                (re.compile(r"COURSE_CHECK_LOG|COURSE_CHECK_TIER"), "touches_verdict_log"),
                (re.compile(r"utils[./]reference"), "imports_reference")]
FALLBACK_PATTERNS = [(re.compile(r"\bdef\s+(check|run_check)\s*\(|^\s*(check|run_check)\s*="), "redefines_check"),
                     (re.compile(r"utils[./]reference"), "imports_reference"),
                     (re.compile(r"\b(torch|np|numpy|builtins)\.[\w.]+\s*=[^=]"), "patches_checker"),
                     (re.compile(r"GRADING_SEED"), "reads_seed"),
                     (re.compile(r"\bos\.(environ|getenv)"), "reads_environment"),
                     (re.compile(r"\bimport\s+(socket|urllib|requests|http)"), "network"),
                     (re.compile(r"\b(subprocess|os\.system|os\.fork|multiprocessing)\b"), "subprocess")]


@dataclass(frozen=True, order=True)
class Flag:
    name: str
    evidence: str  # where and what, e.g. "line 3: def check(exercise_id, fn):"
    source: str = "static"  # "static" (read in the code) or "runtime" (seen by the sandbox)


def scan(source: str) -> list[Flag]:
    """Every flag the code of one cell raises, with the line that raised it (one per flag and line)."""
    lines = source.splitlines()
    flags = {Flag("subprocess", _evidence(lines, n)) for n, line in enumerate(lines, 1) if line.lstrip().startswith("!")}
    try:
        tree = ast.parse(_python_lines(source))
    except (SyntaxError, ValueError):
        return sorted(flags | _scan_text(lines))
    visitor = _Visitor()
    visitor.visit(tree)
    return sorted(flags | {Flag(name, _evidence(lines, line)) for name, line in visitor.found})


def _scan_text(lines: list[str]) -> set[Flag]:
    return {Flag(name, _evidence(lines, n)) for n, line in enumerate(lines, 1)
            for pattern, name in FALLBACK_PATTERNS if pattern.search(line)}


def _evidence(lines: list[str], line: int) -> str:
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return f"line {line}: {text[:120]}"


class _Visitor(ast.NodeVisitor):
    def __init__(self):
        self.found: set[tuple[str, int]] = set()

    def flag(self, name: str, node: ast.AST) -> None:
        self.found.add((name, getattr(node, "lineno", 0)))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in CHECKER_NAMES:
            self.flag("redefines_check", node)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(alias.name, node)
            if alias.asname in CHECKER_NAMES:
                self.flag("redefines_check", node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._module(module, node)
        for alias in node.names:
            if module == "utils" and alias.name == "reference" or alias.name in REFERENCE_HELPERS:
                self.flag("imports_reference", node)
            if (alias.asname or alias.name) in CHECKER_NAMES and alias.asname not in (None, alias.name):
                self.flag("redefines_check", node)
            if alias.name in {"environ", "getenv"}:
                self.flag("reads_environment", node)
            if module == "os" and alias.name in OS_PROCESS_CALLS:
                self.flag("subprocess", node)

    def _module(self, module: str, node: ast.AST) -> None:
        if module.startswith("utils.reference"):
            self.flag("imports_reference", node)
        if (name := MODULE_FLAGS.get(module.split(".")[0])) is not None:
            self.flag(name, node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(target, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, node)
        self.generic_visit(node)

    visit_AnnAssign = visit_AugAssign

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target, node)
        self.generic_visit(node)

    def _target(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Name) and target.id in CHECKER_NAMES:
            self.flag("redefines_check", node)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element, node)
        elif isinstance(target, (ast.Attribute, ast.Subscript)) and _patches(target):
            self.flag("patches_checker", node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _called_name(node.func)
        if name == "setattr" and node.args and _root_name(node.args[0]) in PATCH_ROOTS:
            self.flag("patches_checker", node)
        elif name in REFERENCE_HELPERS and isinstance(node.func, ast.Attribute) or name == "reference_function":
            self.flag("imports_reference", node)
        elif name in DYNAMIC_CALLS and isinstance(node.func, ast.Name):
            self.flag("introspection", node)
        elif name == "getenv":
            self.flag("reads_environment", node)
        elif name in OS_PROCESS_CALLS and _root_name(node.func) == "os":
            self.flag("subprocess", node)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in INTROSPECTION_ATTRIBUTES and (node.attr != "modules" or _root_name(node) == "sys") \
                and (node.attr != "stack" or _root_name(node) == "inspect"):
            self.flag("introspection", node)
        elif node.attr == "environ":
            self.flag("reads_environment", node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in {"_REGISTRY", "GRADING_SEED_VARIABLE", "tier_seed"}:
            self.flag("patches_checker" if node.id == "_REGISTRY" else "reads_seed", node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            for pattern, name in STRING_FLAGS:
                if pattern.search(node.value):
                    self.flag(name, node)


def _patches(target: ast.AST) -> bool:
    """An assignment target that rebinds part of the checker, torch, numpy or builtins."""
    attribute = target.attr if isinstance(target, ast.Attribute) else ""
    return _root_name(target) in PATCH_ROOTS or attribute in PATCH_ATTRIBUTES


def _root_name(node: ast.AST) -> str:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else ""


def _called_name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""
