"""The checker against functions that are wrong in ways a comparison can miss, or that attack the checker itself.

Inputs changed in place; values that are not numbers (NaN, subclasses that lie, tensors on another
device); and the checker's own robustness: timeouts a learner's `except` cannot swallow, exceptions
that are not Exceptions or cannot be printed, huge messages, and which frame is "your line".
"""

import importlib
import json
import sys
import time

import numpy as np
import pytest
import torch

from utils import checking
from utils.checking import Case, Exercise, run_check
from utils.checking.failures import _is_learner_frame


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def _total(x: torch.Tensor) -> float:
    return x.sum().item()


def _cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    return [Case("random", (torch.from_numpy(rng.standard_normal((3, 4))).float(),)) for _ in range(n_random)]


@pytest.fixture(autouse=True)
def exercises():
    """99.5 returns a tensor (doubling its input), 99.6 a number (the input's sum)."""
    checking.register(Exercise("99.5", _cases, function="double", n_random=2, timeout_s=1.0))
    checking.register(Exercise("99.6", _cases, function="total", n_random=2, timeout_s=1.0))
    yield
    del checking._REGISTRY["99.5"], checking._REGISTRY["99.6"]


def tensor_verdict(fn) -> str:
    return run_check("99.5", fn, reference=_double).message


def number_verdict(fn) -> str:
    return run_check("99.6", fn, reference=_total).message


def _line_of(fn, offset: int) -> int:
    return fn.__code__.co_firstlineno + offset


# --- inputs changed in place ------------------------------------------------------------------------
def test_a_function_that_edits_its_input_fails_naming_the_parameter():
    def doubles_in_place(values):
        return values.mul_(2)  # the right output, and the caller's tensor doubled

    assert tensor_verdict(doubles_in_place) == (
        "99.5 failed on random case 1: your function changed `values` in place; leave your inputs unchanged "
        "(work on a copy, and avoid `+=` and methods ending in `_` such as `mul_`)")


def test_no_frame_below_the_function_holds_its_expected_output():
    """A function that walks the frames below it for a tensor equal to the expected output finds none: the checker
    computes each case's expected output only after the learner's function has returned on it."""
    def steals(values):
        frame = sys._getframe(1)
        while frame is not None:
            for value in list(frame.f_locals.values()):
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(item, torch.Tensor) and item.shape == values.shape and torch.equal(item, 2 * values):
                        return item.clone()
            frame = frame.f_back
        return torch.zeros_like(values)

    assert tensor_verdict(steals).startswith("99.5 failed on random case 1: values")


def test_an_edit_through_a_view_is_caught():
    def edits_a_view(x):
        x[0].zero_()
        return 2 * x

    assert "changed `x` in place" in tensor_verdict(edits_a_view)


def test_an_argument_without_a_name_is_numbered():
    assert "changed `argument 1` in place" in tensor_verdict(lambda *args: args[0].add_(0.0).mul_(2))


def test_an_in_place_edit_to_nan_is_caught():
    def nan_in_place(x):
        out = 2 * x
        x.fill_(float("nan"))
        return out

    assert "changed `x` in place" in tensor_verdict(nan_in_place)


def test_in_place_work_on_a_copy_is_fine():
    def on_a_copy(x):
        x = x.clone()
        x *= 2
        return x

    assert run_check("99.5", on_a_copy, reference=_double).passed


# --- values that are not numbers -------------------------------------------------------------------
def test_nan_never_passes_a_tensor_comparison():
    def nan_corner(x):
        out = 2 * x
        out[2, 1] = float("nan")
        return out

    assert tensor_verdict(nan_corner) == "99.5 failed on random case 1: values — yours has nan at index [2, 1] (not a number)"


def test_inf_never_passes_a_tensor_comparison():
    def inf_corner(x):
        out = 2 * x
        out[0, 0] = float("inf")
        return out

    assert tensor_verdict(inf_corner) == "99.5 failed on random case 1: values — yours has inf at index [0, 0] (not a finite number)"


@pytest.mark.parametrize("nan", [float("nan"), np.float64("nan"), torch.tensor(float("nan"))], ids=["float", "numpy", "tensor"])
def test_nan_never_passes_a_scalar_comparison(nan):
    assert number_verdict(lambda x: nan) == "99.6 failed on random case 1: values — yours is nan (not a number)"


def test_inf_never_passes_a_scalar_comparison():
    assert number_verdict(lambda x: float("-inf")) == "99.6 failed on random case 1: values — yours is -inf (not a finite number)"


class _CloseToEverything(float):
    """A float whose differences, absolute values and comparisons all say "equal"."""

    def __sub__(self, other):
        return 0.0

    __rsub__ = __sub__

    def __abs__(self):
        return 0.0

    def __eq__(self, other):
        return True

    def __gt__(self, other):
        return False

    def __lt__(self, other):
        return False

    __hash__ = float.__hash__


class _IntThatLies(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_a_float_subclass_that_lies_is_rejected():
    assert number_verdict(lambda x: _CloseToEverything(123.0)) == (
        "99.6 failed on random case 1: type — expected a plain number (float), got a _CloseToEverything; "
        "return a plain float, e.g. float(x)")


def test_an_int_subclass_that_lies_is_rejected():
    assert "type — expected a plain number (float), got a _IntThatLies" in number_verdict(lambda x: _IntThatLies(3))


def test_a_bool_is_not_a_number():
    assert number_verdict(lambda x: True) == "99.6 failed on random case 1: type — expected a number (float), got a bool"


class _AgreeableTensor(torch.Tensor):
    """A tensor subclass whose every torch operation (comparisons included) says "all close"."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.all, torch.isclose):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_subclass_that_lies_is_rejected():
    assert tensor_verdict(lambda x: torch.zeros(3, 4).as_subclass(_AgreeableTensor)) == (
        "99.5 failed on random case 1: type — expected a plain torch.Tensor, got a _AgreeableTensor (a subclass of "
        "torch.Tensor); return a plain tensor")


def test_a_parameter_is_not_a_plain_tensor():
    assert "got a Parameter (a subclass of torch.Tensor)" in tensor_verdict(lambda x: torch.nn.Parameter(2 * x))


def test_a_tensor_on_another_device_gets_a_verdict_not_a_traceback():
    assert tensor_verdict(lambda x: torch.empty(3, 4, device="meta")) == (
        "99.5 failed on random case 1: device — expected a tensor on cpu, got one on meta")
    assert number_verdict(lambda x: torch.empty((), device="meta")) == (
        "99.6 failed on random case 1: type — expected a number (float), got a tensor on the meta device; return a plain float")


def test_a_one_element_tensor_is_not_a_number():
    assert number_verdict(lambda x: x.sum().reshape(1)) == (
        "99.6 failed on random case 1: type — expected a number (float), got a tensor of shape [1]; "
        "return a plain float (e.g. with .item())")


def test_a_sparse_tensor_gets_a_verdict():
    assert "layout — expected a dense tensor" in tensor_verdict(lambda x: (2 * x).to_sparse())


# --- the checker's own robustness -------------------------------------------------------------------
def test_a_retry_loop_catching_exception_cannot_swallow_the_timeout():
    def retries_forever(x):
        while True:
            try:
                time.sleep(0.05)
            except Exception:  # a learner's "retry on any error"
                continue

    start = time.perf_counter()
    assert tensor_verdict(retries_forever) == "99.5 timed out on random case 1: your function ran longer than 1 s (an endless loop?)"
    assert time.perf_counter() - start < 5


def test_catching_every_timeout_still_ends_in_a_timeout_verdict():
    def swallows_base_exceptions(x):
        caught = 0
        while caught < 3:  # gives up after the checker interrupted it three times
            try:
                time.sleep(0.05)
            except BaseException:
                caught += 1
        return 2 * x  # the right answer, but far too late

    start = time.perf_counter()
    assert tensor_verdict(swallows_base_exceptions).startswith("99.5 timed out on random case 1:")
    assert time.perf_counter() - start < 6


def test_the_timeout_does_not_fire_after_the_check():
    tensor_verdict(lambda x: 2 * x)
    time.sleep(1.5)  # longer than the exercise's time limit: no stray alarm may arrive now


@pytest.mark.parametrize(("raised", "shown"), [(SystemExit(3), "SystemExit: 3"), (KeyboardInterrupt(), "KeyboardInterrupt"),
                                               (GeneratorExit(), "GeneratorExit")])
def test_base_exceptions_become_one_line_verdicts(raised, shown):
    def raises(x):
        raise raised

    assert tensor_verdict(raises) == (f"99.5 failed on random case 1: your code raised {shown} "
                                      f"(your line {_line_of(raises, 1)}: `raise raised`)")


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message for you")


def test_an_exception_whose_str_raises_becomes_one_line():
    def raises(x):
        raise _Unprintable()

    assert tensor_verdict(raises) == ("99.5 failed on random case 1: your code raised _Unprintable: (its message could not be "
                                      f"shown) (your line {_line_of(raises, 1)}: `raise _Unprintable()`)")


def test_a_huge_exception_message_is_truncated():
    def raises(x):
        raise ValueError("x" * 1_000_000)

    message = tensor_verdict(raises)
    assert message.count("\n") == 0 and len(message) < 400
    assert "x" * 199 + "…" in message and message.endswith(f"(your line {_line_of(raises, 1)}: `raise ValueError(\"x\" * 1_000_000)`)")


def test_frames_of_frozen_modules_the_stdlib_and_utils_are_never_your_line():
    def imports(x):
        return importlib.import_module("no_such_module_anywhere")  # raised inside <frozen importlib._bootstrap>

    def parses(x):
        return json.loads("{")  # raised inside json/decoder.py

    def seeds(x):
        return checking.derive_seed("not a number")  # raised inside utils/seeds.py

    for fn in (imports, parses, seeds):
        assert tensor_verdict(fn).endswith(f"(your line {_line_of(fn, 1)}: `{_source_line(fn, 1)}`)"), fn.__name__


def _source_line(fn, offset: int) -> str:
    import linecache

    return linecache.getline(fn.__code__.co_filename, _line_of(fn, offset)).strip()


@pytest.mark.parametrize(("filename", "is_learner"), [
    ("<frozen importlib._bootstrap>", False), (json.__file__, False), (torch.__file__, False), (checking.__file__, False),
    (__file__, True), ("<ipython-input-3-abc>", True), ("/tmp/ipykernel_123/4567.py", True), ("<string>", True)])
def test_which_frames_are_the_learners(filename, is_learner):
    assert _is_learner_frame(filename) is is_learner


def test_not_implemented_in_a_helper_is_reported_like_any_exception():
    def helper(x):
        raise NotImplementedError("helper is still a stub")

    def uses_a_stubbed_helper(x):
        return helper(x) * 2

    assert tensor_verdict(uses_a_stubbed_helper) == (
        "99.5 failed on random case 1: your code raised NotImplementedError: helper is still a stub "
        f"(your line {_line_of(helper, 1)}: `raise NotImplementedError(\"helper is still a stub\")`)")


def test_not_implemented_in_the_function_body_is_a_stub():
    def stub(x):
        """A docstring, then the stub."""
        raise NotImplementedError

    assert tensor_verdict(stub) == "99.5 is not implemented yet"


def test_a_wrong_number_of_parameters_is_one_line():
    message = tensor_verdict(lambda: None)
    assert message.startswith("99.5 failed on random case 1: your code raised TypeError:") and message.count("\n") == 0
