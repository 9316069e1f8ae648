"""A check leaves no trace: inputs copied and watched, checker models restored, the learner's global state put back.

Each call gets fresh copies of its inputs, and a copy the learner's function changed in place fails the case.
Checker models registered with `keep_pristine` are snapshotted and restored after every case. A whole check
runs with seeded generators, torch's default dtype and grad mode, and no global module hooks; the learner's
own are given back afterwards.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import operator
import random
from typing import Any, Callable

import numpy as np
import torch

from utils.checking.failures import _Failure


# --- inputs changed in place ------------------------------------------------------------------------
def _check_untouched(fn: Callable, pristine: tuple, given: tuple, where: str) -> None:
    """Fail if the learner's function changed an argument, a checker model, or left a global hook."""
    names = _parameter_names(fn, len(given))
    for name, before, after in zip(names, pristine, given):
        if not _same_value(before, after):
            added = _entries_added(before, after)
            if added:
                raise _Failure(f"failed {where}: your function added {added} to `{name}`; TransformerLens helpers such "
                               "as `stack_head_results` store what they compute in the cache they are called on: "
                               "leave your inputs unchanged (compute from the cache's own entries, or use a copy)")
            raise _Failure(f"failed {where}: your function changed `{name}` in place; leave your inputs unchanged "
                           "(work on a copy, and avoid `+=` and methods ending in `_` such as `mul_`)")
    for model, snapshot in _snapshots_in(given):
        change = snapshot.change()
        if change:
            owner = _model_name(model, names, given)
            if change == "hooks":
                raise _Failure(f"failed {where}: your function left a hook on `{owner}`; use `{owner}.run_with_hooks(...)` "
                               f"or `with {owner}.hooks(...):`, which remove their hooks")
            advice = "ablate with a hook instead, or restore them" if change == "weights" else "restore what you change"
            raise _Failure(f"failed {where}: your function changed the {change} of `{owner}` in place; {advice} before returning")
    if any(_global_hooks().values()):
        raise _Failure(f"failed {where}: your function left a global module hook registered; remove it before returning")
    if _ACTIVE:
        _ACTIVE[-1].reset()  # a default dtype or grad mode the learner's code set must not change what comes next


def _entries_added(before: Any, after: Any) -> str:
    """'`a`, `b`' when `after` is the cache `before` with entries added and nothing else changed; else ''."""
    if not (_is_cache(before) and _is_cache(after)):
        return ""
    new = [k for k in after.cache_dict if k not in before.cache_dict]
    kept = all(k in after.cache_dict and _same_tensor(v, after.cache_dict[k]) for k, v in before.cache_dict.items())
    return ", ".join(f"`{k}`" for k in new[:2]) + (" and more" if len(new) > 2 else "") if new and kept else ""


def _parameter_names(fn: Callable, count: int) -> list[str]:
    """The names of `fn`'s first `count` positional parameters ("argument 3" where there is none)."""
    try:
        parameters = [p.name for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    return [parameters[i] if i < len(parameters) else f"argument {i + 1}" for i in range(count)]


def _model_name(model: torch.nn.Module, names: list[str], given: tuple) -> str:
    for name, value in zip(names, given):
        if value is model:
            return name
        if getattr(value, "model", None) is model:
            return f"{name}.model"
    return "the checker's model"


def _same_value(before: Any, after: Any) -> bool:
    """Whether a copy handed to the learner still equals the pristine value it was copied from."""
    if isinstance(before, torch.Tensor):
        return type(after) is type(before) and _same_tensor(before, after)
    if _is_cache(before):
        keys = list(before.cache_dict)
        return (_is_cache(after) and list(after.cache_dict) == keys
                and all(_same_tensor(before.cache_dict[k], after.cache_dict[k]) for k in keys))
    if isinstance(before, (tuple, list)):
        return type(after) is type(before) and len(after) == len(before) and all(map(_same_value, before, after))
    if isinstance(before, dict):
        return type(after) is dict and after.keys() == before.keys() and all(_same_value(before[k], after[k]) for k in before)
    return True  # ints, ranges, generators (consumed on purpose), models (checked against their snapshot)


def _same_tensor(before: torch.Tensor, after: Any) -> bool:
    if type(after) is not torch.Tensor or after.shape != before.shape or after.dtype != before.dtype:
        return False
    if after.device != before.device:
        return False
    if torch.equal(before, after):
        return True
    return bool(((before == after) | (before.isnan() & after.isnan())).all()) if before.is_floating_point() else False


def _is_cache(value: Any) -> bool:
    return type(value).__name__ == "ActivationCache" and isinstance(getattr(value, "cache_dict", None), dict)


def _copy(args: tuple, generators: bool = True) -> tuple:
    """Fresh copies of tensors (also inside caches, tuples and lists) and of generators, so no call sees another's edits."""
    return tuple(_copy_value(a, generators) for a in args)


def _copy_value(value: Any, generators: bool = True) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if generators and isinstance(value, torch.Generator):
        return torch.Generator(device=value.device).set_state(value.get_state())
    if _is_cache(value):
        return type(value)({k: v.clone() for k, v in value.cache_dict.items()}, value.model,
                           has_batch_dim=value.has_batch_dim)
    if isinstance(value, (tuple, list)):
        return type(value)(_copy_value(v, generators) for v in value)
    if isinstance(value, dict):
        return {k: _copy_value(v, generators) for k, v in value.items()}
    return value


# --- pristine checker models ------------------------------------------------------------------------
_HOOK_DICTS = tuple(name for name, value in vars(torch.nn.Module()).items() if "hooks" in name and isinstance(value, dict))
_MODULE_DICTS = ("_parameters", "_buffers", "_modules") + _HOOK_DICTS
_LENS_HOOK_LISTS = ("fwd_hooks", "bwd_hooks")  # TransformerLens HookPoints track their handles here
_MODULE_ATTRIBUTES = ("training", "_is_full_backward_hook", "forward")  # "forward": an instance-level override


class _ModelSnapshot:
    """Everything a learner's function could leave changed on a model: weights, hooks, modules, modes, config.

    A model has hundreds of modules with a dozen hook dicts each, checked after every case: the common
    "nothing changed" path compares them in bulk (map over C-level calls), and only a change is looked at closely.
    """

    def __init__(self, model: torch.nn.Module):
        self.modules = list(model.modules())
        self.dicts = [(m, name, m.__dict__[name], dict(m.__dict__[name])) for m in self.modules for name in _MODULE_DICTS
                      if isinstance(m.__dict__.get(name), dict)]  # (module, name, the dict itself, a copy of it)
        self.lists = [(m, name, list(m.__dict__[name])) for m in self.modules for name in _LENS_HOOK_LISTS
                      if isinstance(m.__dict__.get(name), list)]
        self.attributes = [(m, {k: m.__dict__[k] for k in _MODULE_ATTRIBUTES if k in m.__dict__}) for m in self.modules]
        tensors = {id(t): t for m in self.modules for t in [*m._parameters.values(), *m._buffers.values()] if t is not None}
        self.tensors = [(t, t.detach().clone(), t.requires_grad) for t in tensors.values()]
        self.config = getattr(model, "cfg", None)
        self.config_values = dict(vars(self.config)) if hasattr(self.config, "__dict__") else None
        self._dict_owners = [m.__dict__ for m, *_ in self.dicts]
        self._dict_names = [name for _, name, *_ in self.dicts]
        self._dict_originals = [original for *_, original, _ in self.dicts]
        self._dict_lengths = [len(saved) for *_, saved in self.dicts]
        self._dict_filled = [(original, saved) for *_, original, saved in self.dicts if saved]
        self._list_owners = [m.__dict__ for m, *_ in self.lists]
        self._list_names = [name for _, name, _ in self.lists]
        self._list_saved = [saved for *_, saved in self.lists]

    def change(self) -> str | None:
        """What differs from the snapshot: "weights", "hooks", "modules", "config", or None."""
        if not self._tensors_intact():
            return "weights"
        if not self._dicts_intact():
            for module, name, original, saved in self.dicts:
                if not _same_dict(module.__dict__.get(name), original, saved):
                    return "hooks" if "hooks" in name else "modules" if name == "_modules" else "weights"
        if not self._lists_intact():
            return "hooks"
        if any(m.__dict__.get("forward") is not saved.get("forward") for m, saved in self.attributes):
            return "modules"
        if self.config_values is not None and not _same_config(vars(self.config), self.config_values):
            return "config"
        return None

    def restore(self) -> None:
        """Put everything back as it was when the model was loaded (the objects TransformerLens holds stay the same)."""
        if not self._dicts_intact():
            for module, name, original, saved in self.dicts:
                if not _same_dict(module.__dict__.get(name), original, saved):
                    module.__dict__[name] = original  # the same object: handles TransformerLens holds still point into it
                    original.clear()
                    original.update(saved)
        if not self._lists_intact():
            for module, name, saved in self.lists:
                module.__dict__[name] = list(saved)
        for module, attributes in self.attributes:
            if "forward" not in attributes:
                module.__dict__.pop("forward", None)
            module.__dict__.update(attributes)
        with torch.no_grad():
            for tensor, saved, requires_grad in self.tensors:
                if tensor.shape != saved.shape or tensor.dtype != saved.dtype or tensor.device != saved.device:
                    tensor.data = saved.clone()
                elif not torch.equal(tensor, saved):
                    tensor.copy_(saved)
                tensor.grad = None
                tensor.requires_grad_(requires_grad)
        if self.config_values is not None and not _same_config(vars(self.config), self.config_values):
            vars(self.config).clear()
            vars(self.config).update(self.config_values)

    def _tensors_intact(self) -> bool:
        return all(t.shape == s.shape and t.dtype == s.dtype and t.device == s.device and torch.equal(t.detach(), s)
                   for t, s, _ in self.tensors)

    def _dicts_intact(self) -> bool:
        if any(map(operator.is_not, map(dict.get, self._dict_owners, self._dict_names), self._dict_originals)):
            return False
        if list(map(len, self._dict_originals)) != self._dict_lengths:
            return False
        return all(_same_dict(original, original, saved) for original, saved in self._dict_filled)

    def _lists_intact(self) -> bool:
        current = list(map(dict.get, self._list_owners, self._list_names))
        if not all(map(operator.is_, map(type, current), itertools.repeat(list))):
            return False
        if list(map(len, current)) != list(map(len, self._list_saved)):
            return False
        return all(all(map(operator.is_, now, saved)) for now, saved in zip(current, self._list_saved) if saved)


def _same_dict(current: Any, original: dict, saved: dict) -> bool:
    """Whether a module's dict is still `original` holding exactly the entries of `saved` (fast when both are empty)."""
    if current is not original or len(current) != len(saved):
        return False
    return not saved or all(current.get(k, saved) is v for k, v in saved.items())


def _same_config(current: dict, saved: dict) -> bool:
    try:
        return current.keys() == saved.keys() and all(current[k] is v or bool(current[k] == v) for k, v in saved.items())
    except Exception:  # a value whose comparison fails (an array, a tensor): changed
        return False


_PRISTINE: dict[int, tuple[torch.nn.Module, _ModelSnapshot]] = {}


def keep_pristine(model: torch.nn.Module) -> torch.nn.Module:
    """Snapshot a checker model as it is now; every check restores it to this state after each case."""
    _PRISTINE[id(model)] = (model, _ModelSnapshot(model))
    return model


def restore_pristine(args: tuple | None = None) -> None:
    """Restore checker models to their snapshots (weights, hooks, modules, modes, config): all, or those `args` reach.

    A check restores every model before its first case and after its last; between cases, only the models
    a case hands to the learner (directly, or as a cache's `.model`), since only those are used again.
    """
    for _, snapshot in (_PRISTINE.values() if args is None else _snapshots_in(args)):
        snapshot.restore()


def _snapshots_in(args: Any) -> list[tuple[torch.nn.Module, _ModelSnapshot]]:
    """The registered checker models that `args` hold: as an argument, inside a tuple or list, or as a cache's model."""
    found: dict[int, tuple[torch.nn.Module, _ModelSnapshot]] = {}

    def visit(value: Any) -> None:
        if id(value) in _PRISTINE:
            found[id(value)] = _PRISTINE[id(value)]
        elif _is_cache(value):
            visit(value.model)
        elif isinstance(value, (tuple, list)):
            for item in value:
                visit(item)

    visit(args)
    return list(found.values())


# --- the learner's global state ---------------------------------------------------------------------
def _global_hooks() -> dict[str, dict]:
    """torch's global module hooks (register_module_forward_hook and friends), by name."""
    from torch.nn.modules import module

    return {name: value for name, value in vars(module).items()
            if name.startswith("_global_") and name.endswith("hooks") and isinstance(value, dict)}


class _LearnerGlobals:
    """The learner's global settings: a check runs with torch's defaults and no global module hooks, then puts these back."""

    def __init__(self):
        self.dtype, self.grad = torch.get_default_dtype(), torch.is_grad_enabled()
        self.hooks = {name: dict(hooks) for name, hooks in _global_hooks().items()}

    def reset(self) -> None:
        """The checker's settings, whatever the learner's notebook or function set: float32, grad mode on, no global hooks."""
        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)
        for hooks in _global_hooks().values():
            hooks.clear()

    def put_back(self) -> None:
        self.reset()
        torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(self.grad)
        for name, hooks in _global_hooks().items():
            hooks.update(self.hooks.get(name, {}))


_ACTIVE: list[_LearnerGlobals] = []  # the check in progress (a stack, in case a check runs inside another)


@contextlib.contextmanager
def _isolated_rng(seed: int):
    """Seed torch, numpy and random for a block, and give the learner's generators back untouched afterwards."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            torch.manual_seed(seed)
            np.random.seed(seed % 2 ** 32)
            random.seed(seed)
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


@contextlib.contextmanager
def _isolated(seed: int):
    """A whole check: seeded generators, no global module hooks; the learner's state comes back afterwards."""
    learner_globals = _LearnerGlobals()
    with _isolated_rng(seed):
        _ACTIVE.append(learner_globals)
        try:
            learner_globals.reset()
            restore_pristine()
            yield learner_globals
        finally:
            _ACTIVE.remove(learner_globals)
            restore_pristine()
            learner_globals.put_back()
