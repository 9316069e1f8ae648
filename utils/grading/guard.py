"""What the learner's code may do inside the grading sandbox, enforced by an audit hook, and what it tried.

Installed in the sandboxed process (utils/grading/runner.py) before the first cell runs; an audit hook
cannot be removed. It judges each sensitive operation by who asks for it: if a frame of the learner's code
(a notebook cell, or anything that is not the standard library, site-packages or the course's utils/)
is on the stack, the operation is the learner's, and
- a file may be written only inside the working copy (and /dev/null);
- the course's solutions, reference solutions, tests and git history, the grading folders and other
  processes' environments cannot be read;
- no process starts (fork, subprocess, os.system, shell escapes), no socket opens, no ctypes call is made
  from the learner's own code, no resource limit changes, no other process is signalled;
- during a graded check, the learner's own lines take no frame (sys._getframe, a traceback's or generator's
  frame) and set no tracer;
- utils.reference (the reference solutions) cannot be imported: in a grading run the learner's code sees a
  course without answers, as in a student release; the checker, called by the grader, still can;
- the grading seed is not in the environment at all: `os.environ` gives it to the checker only.
A refused operation raises PermissionError (ModuleNotFoundError for an import) in the learner's code, and
leaves evidence: a runtime flag (utils/grading/scan.py's names). `Watched` keeps the checker, torch's and
numpy's comparison functions and the builtins as they were, and puts them back before every check.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator

from utils.checking import GRADING_SEED_VARIABLE
from utils.checking.failures import _is_learner_frame

LOG_VARIABLE = "COURSE_CHECK_LOG"
UTILS_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
REFERENCE_PACKAGE = "utils.reference"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Audit events that change the file system, and the positions of their path arguments.
_PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.link": (0, 1),
                "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,), "shutil.rmtree": (0,),
                "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,), "os.mkfifo": (0,), "os.mknod": (0,)}
_PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
                   "pty.spawn", "os.startfile", "os.symlink"}
_LIMIT_EVENTS = {"resource.setrlimit", "resource.prlimit", "os.killpg", "signal.pthread_kill", "sys.setswitchinterval"}
_GC_EVENTS = {"gc.get_objects", "gc.get_referrers", "gc.get_referents"}
# Frames: during a graded check the learner's own lines may take no frame (sys._getframe, a traceback's or a
# generator's frame) and set no tracer. The checker computes each expected output only after the learner's function
# has returned (utils.checking), so the frames below it hold none; this refuses the plain way to look as well.
_FRAME_EVENTS = {"sys._getframe", "sys._current_frames", "sys.settrace", "sys.setprofile"}
_FRAME_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}
# Watched: whole module dicts for the checker; only their callables for these libraries.
_CHECKER_MODULES = ("utils.checking", "utils.exercises", "utils.seeds")
# The checker's comparisons, and what check() writes a verdict with (a patched json.dumps could forge one).
_LIBRARY_MODULES = ("builtins", "math", "operator", "numpy", "numpy.testing", "torch", "torch.testing",
                    "torch.nn.functional", "json", "json.encoder", "dataclasses", "copy")


_dumps = json.dumps  # bound before any learner code runs


class Blocked(PermissionError):
    pass


class Evidence:
    """Runtime flags, one JSON line each (the same flag and detail once), in a file opened before the learner's code runs."""

    def __init__(self, path: Path):
        self._file = open(path, "a", buffering=1)
        self._seen: set[tuple[str, str]] = set()

    def add(self, flag: str, detail: str) -> None:
        if (flag, detail) in self._seen or len(self._seen) > 200:
            return
        self._seen.add((flag, detail))
        self._file.write(_dumps({"flag": flag, "evidence": detail[:300]}) + "\n")


class _Frames:
    """Whose code is running: the learner's (cells, their files), the course's (utils/) or a library's."""

    def __init__(self):
        self._kinds: dict[str, str] = {}

    def kind(self, filename: str) -> str:
        if (found := self._kinds.get(filename)) is None:
            if _is_learner_frame(filename):
                found = "learner"
            else:
                found = "course" if os.path.realpath(filename).startswith(UTILS_DIR) else "library"
            self._kinds[filename] = found
        return found

    def learner_on_stack(self, frame: types.FrameType | None) -> bool:
        while frame is not None:
            if self.kind(frame.f_code.co_filename) == "learner":
                return True
            frame = frame.f_back
        return False

    def learner_asks_directly(self, frame: types.FrameType | None, skip: str = "") -> bool:
        """Whether the first frame outside the libraries (and `skip`, a package path) is the learner's own code."""
        while frame is not None:
            filename = frame.f_code.co_filename
            if self.kind(filename) != "library" and not (skip and skip in filename):
                return self.kind(filename) == "learner"
            frame = frame.f_back
        return False


class Policy:
    """The paths the learner's code may write (`work`) and may not read (`unreadable`: path -> the flag a read raises)."""

    def __init__(self, work: Path, unreadable: dict[str, str]):
        self.work = os.path.realpath(work) + os.sep
        self.unreadable_dirs = {os.path.realpath(p) + os.sep: flag for p, flag in unreadable.items()}

    def may_write(self, path: str) -> bool:
        if path == os.devnull:
            return True
        if not os.path.isabs(path) and ".." in Path(path).parts:  # relative to some dir_fd we cannot see
            return False
        return (os.path.realpath(path) + os.sep).startswith(self.work)

    def unreadable(self, path: str) -> str | None:
        """The flag reading `path` raises, or None if the learner's code may read it."""
        real = os.path.realpath(path)
        if (real + os.sep).startswith(self.work):
            return None
        parts = real.split(os.sep)
        if len(parts) >= 4 and parts[1] == "proc" and parts[3] in {"environ", "mem"}:
            return "reads_seed"
        return next((flag for folder, flag in self.unreadable_dirs.items() if (real + os.sep).startswith(folder)), None)


class Guard:
    """The audit hook and the seed-keeping environment of one sandboxed process."""

    def __init__(self, policy: Policy, evidence: Evidence, seed: str):
        self.policy, self.evidence, self.frames = policy, evidence, _Frames()
        self.environ = _SeedEnviron(os.environ, seed, self)
        self._judging = False  # inside the hook
        self.checking = False  # a graded check is running

    def install(self) -> None:
        os.environ = self.environ
        forget_reference()
        sys.addaudithook(self._hook)

    def learner_reads_seed(self) -> bool:
        """Called by the environment when the seed is asked for: whether to refuse (the learner's code asks)."""
        caller = sys._getframe(2)
        if not self.frames.learner_on_stack(caller):
            return False
        if self.frames.learner_asks_directly(caller):
            self.evidence.add("reads_seed", f"read {GRADING_SEED_VARIABLE} from the environment")
        return True

    @contextlib.contextmanager
    def verdict_log(self, path: Path) -> Iterator[None]:
        """COURSE_CHECK_LOG set for one graded check (learner-initiated checks log nothing)."""
        os.environ = self.environ
        self.environ[LOG_VARIABLE] = str(path)
        self.checking = True
        try:
            yield
        finally:
            self.checking = False
            self.environ.pop(LOG_VARIABLE, None)

    # --- the audit hook -----------------------------------------------------------------------------
    def _hook(self, event: str, args: tuple) -> None:
        handler = _HANDLERS.get(event) or (_ctypes if event.startswith("ctypes.") else None)
        if handler is None or self._judging:
            return
        self._judging = True  # the hook's own frame reads (sys._getframe, f_code) raise events: not judged
        try:
            caller = sys._getframe(1)
            if self.frames.learner_on_stack(caller):
                handler(self, event, args, caller)
        finally:
            self._judging = False

    def refuse(self, flag: str, what: str) -> None:
        self.evidence.add(flag, what)
        raise Blocked(f"the grading sandbox does not allow this: {what}")


def _open(guard: Guard, event: str, args: tuple, caller) -> None:
    path, mode, flags = args
    if isinstance(path, int):
        return
    path = os.fsdecode(path)
    writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
    if writing and not guard.policy.may_write(path):
        guard.refuse("writes_outside", f"write {path}")
    if not writing and (flag := guard.policy.unreadable(path)):
        guard.refuse(flag, f"read {path}")


def _file_change(guard: Guard, event: str, args: tuple, caller) -> None:
    for position in _PATH_EVENTS[event]:
        path = args[position] if len(args) > position else None
        if isinstance(path, (str, bytes, os.PathLike)) and not guard.policy.may_write(os.fsdecode(path)):
            guard.refuse("writes_outside", f"{event} {os.fsdecode(path)}")


def _import(guard: Guard, event: str, args: tuple, caller) -> None:
    module = str(args[0])
    if module == REFERENCE_PACKAGE or module.startswith(REFERENCE_PACKAGE + "."):
        if guard.frames.learner_asks_directly(caller):
            guard.evidence.add("imports_reference", f"import {module}")
        raise ModuleNotFoundError(f"No module named {module!r} (a grading run has no reference solutions)", name=module)


def _process(guard: Guard, event: str, args: tuple, caller) -> None:
    guard.refuse("subprocess", f"{event} {str(args[:2])[:120]}")


def _network(guard: Guard, event: str, args: tuple, caller) -> None:
    guard.refuse("network", f"{event} {str(args[1:3])[:120]}")


def _kill(guard: Guard, event: str, args: tuple, caller) -> None:
    if args and args[0] not in (0, os.getpid()):
        guard.refuse("sandbox_escape", f"signal process {args[0]}")


def _limits(guard: Guard, event: str, args: tuple, caller) -> None:
    guard.refuse("sandbox_escape", f"{event} {str(args)[:80]}")


def _gc(guard: Guard, event: str, args: tuple, caller) -> None:
    if guard.frames.learner_asks_directly(caller):
        guard.refuse("introspection", event)


def _ctypes(guard: Guard, event: str, args: tuple, caller) -> None:
    if guard.frames.learner_asks_directly(caller, skip=os.sep + "ctypes" + os.sep):
        guard.refuse("introspection", f"{event} (ctypes)")


def _setattr(guard: Guard, event: str, args: tuple, caller) -> None:
    # From the learner's own line: a library may swap its own code (networkx compiles each function on first use).
    if len(args) >= 2 and args[1] == "__code__" and guard.frames.kind(caller.f_code.co_filename) == "learner":
        guard.refuse("patches_checker", f"replace the code of {getattr(args[0], '__qualname__', '?')}")


def _frame(guard: Guard, event: str, args: tuple, caller) -> None:
    if not guard.checking or event == "object.__getattr__" and (len(args) < 2 or args[1] not in _FRAME_ATTRIBUTES):
        return
    if guard.frames.kind(caller.f_code.co_filename) == "learner":  # the learner's own line (libraries may: torch does)
        what = f"{type(args[0]).__name__}.{args[1]}" if event == "object.__getattr__" else event
        guard.refuse("introspection", f"take a frame ({what})")


_HANDLERS: dict[str, Callable] = {"open": _open, "import": _import, "os.kill": _kill, "object.__setattr__": _setattr,
                                  "object.__getattr__": _frame, **dict.fromkeys(_FRAME_EVENTS, _frame),
                                  **dict.fromkeys(_PATH_EVENTS, _file_change), **dict.fromkeys(_PROCESS_EVENTS, _process),
                                  **dict.fromkeys(_LIMIT_EVENTS, _limits), **dict.fromkeys(_GC_EVENTS, _gc),
                                  **{e: _network for e in ("socket.__new__", "socket.connect", "socket.bind",
                                                           "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                                                           "socket.gethostbyname", "socket.gethostbyaddr",
                                                           "socket.getnameinfo", "urllib.Request")}}


class _SeedEnviron(os._Environ):
    """os.environ without the grading seed, which only the checker gets when it asks for it.

    The seed is removed from the process's real environment (so /proc/self/environ and child processes
    never see it); `environ["COURSE_GRADING_SEED"]` returns it unless the learner's code is asking.
    """

    def __init__(self, original: os._Environ, seed: str, guard: Guard):
        original.pop(GRADING_SEED_VARIABLE, None)
        super().__init__(original._data, original.encodekey, original.decodekey, original.encodevalue,
                         original.decodevalue)
        self._seed, self._guard = seed, guard

    def __getitem__(self, key: str) -> str:
        if key == GRADING_SEED_VARIABLE:
            if not self._seed or self._guard.learner_reads_seed():
                raise KeyError(key)
            return self._seed
        return super().__getitem__(key)


def forget_reference() -> None:
    """Drop utils.reference from the module cache, so that the next import of it passes the audit hook."""
    for name in [n for n in sys.modules if n == REFERENCE_PACKAGE or n.startswith(REFERENCE_PACKAGE + ".")]:
        del sys.modules[name]
    utils = sys.modules.get("utils")
    if utils is not None and "reference" in vars(utils):
        delattr(utils, "reference")


# --- the checker as it was --------------------------------------------------------------------------
class Watched:
    """The objects a check relies on, as they were before any learner code ran; `restore` puts them back."""

    def __init__(self):
        self._entries = list(_watched_entries())

    def changes(self) -> list[str]:
        return [entry.name for entry in self._entries if entry.changed()]

    def restore(self) -> list[str]:
        changed = self.changes()
        for entry in self._entries:
            if entry.changed():
                with contextlib.suppress(Exception):
                    entry.restore()
        return changed


class _Attribute:
    """`owner.key` (read from the owner's own namespace) must still be `value`."""

    def __init__(self, owner: Any, key: str, value: Any, name: str):
        self.owner, self.key, self.value, self.name = owner, key, value, name

    def changed(self) -> bool:
        return vars(self.owner).get(self.key, _MISSING) is not self.value

    def restore(self) -> None:
        setattr(self.owner, self.key, self.value)


class _Contents:
    """A list or dict must still hold the same objects."""

    def __init__(self, container: list | dict, name: str):
        self.container, self.name = container, name
        self.saved = dict(container) if isinstance(container, dict) else list(container)

    def changed(self) -> bool:
        now = self.container
        if len(now) != len(self.saved):
            return True
        pairs = ((now.get(k, _MISSING), v) for k, v in self.saved.items()) if isinstance(now, dict) else zip(now, self.saved)
        return any(a is not b for a, b in pairs)

    def restore(self) -> None:
        if isinstance(self.container, dict):
            self.container.clear()
            self.container.update(self.saved)
        else:
            self.container[:] = self.saved


_MISSING = object()


def _watched_entries() -> Iterator[_Attribute | _Contents]:
    import torch

    from utils.checking import _REGISTRY, exercises

    exercises()  # every spec registered (and imported) before the snapshot
    for module_name, module in sorted(sys.modules.items()):
        if module is None:
            continue
        if module_name.startswith(_CHECKER_MODULES):
            yield from (_Attribute(module, key, value, f"{module_name}.{key}") for key, value in list(vars(module).items()))
            for cls in _classes_of(module):  # their methods too: a patched Verdict.__init__ could forge verdicts
                yield from (_Attribute(cls, k, v, f"{module_name}.{cls.__name__}.{k}") for k, v in list(vars(cls).items()))
        elif module_name in _LIBRARY_MODULES:
            yield from _callables(module, module_name)
    for cls in (torch.Tensor, torch._C.TensorBase, json.JSONEncoder):
        yield from _callables(cls, f"{cls.__module__}.{cls.__name__}")
    yield _Contents(_REGISTRY, "the exercise registry")
    for exercise in _REGISTRY.values():
        for key, value in list(vars(exercise).items()):
            yield _Attribute(exercise, key, value, f"exercise {exercise.id}: {key}")
            if isinstance(value, list):
                yield _Contents(value, f"exercise {exercise.id}: {key}")


def _classes_of(module: types.ModuleType) -> list[type]:
    return [value for value in vars(module).values() if isinstance(value, type) and value.__module__ == module.__name__]


def _callables(owner: Any, prefix: str) -> Iterator[_Attribute]:
    """Functions and classes (not callable instances, which libraries replace as they please)."""
    return (_Attribute(owner, key, value, f"{prefix}.{key}") for key, value in list(vars(owner).items())
            if isinstance(value, _FUNCTION_TYPES) and (not key.startswith("__") or key in ("__eq__", "__ne__")))


_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
                   type)
