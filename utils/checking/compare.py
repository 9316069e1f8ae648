"""Structure and values: a learner's output against the expected one, and one-line descriptions of the difference.

Structure (type, shape, dtype, device) comes first and normalises the output (numbers as plain numbers);
values are compared at the exercise's tolerances, and a mismatch says how far off and which way, never the target.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from utils.checking.failures import _type_name


class _Mismatch(Exception):
    """A learner output that differs from the reference: `kind` is type, shape, dtype, device or values."""

    def __init__(self, kind: str, detail: str, output: str = ""):
        super().__init__(detail)
        self.kind, self.detail, self.output = kind, detail, output

    def line(self) -> str:
        return f"{self.output + ': ' if self.output else ''}{self.kind} — {self.detail}"


# --- structure and values ---------------------------------------------------------------------------
_NUMPY_NUMBERS = (np.floating, np.integer)


def _check_structure(expected: Any, received: Any) -> Any:
    """Type, shape, dtype and device of `received` against `expected`; returns it normalised (numbers as plain numbers)."""
    if isinstance(expected, torch.Tensor):
        return _check_tensor_structure(expected, received)
    if isinstance(expected, (float, int)) and not isinstance(expected, bool):
        return _as_number(received)
    if isinstance(expected, tuple):
        if not isinstance(received, tuple) or tuple.__len__(received) != len(expected):
            raise _Mismatch("type", f"expected a tuple of {len(expected)} items, got {_describe_value(received)}")
        items = []
        for index, item in enumerate(expected):
            try:
                items.append(_check_structure(item, tuple.__getitem__(received, index)))
            except _Mismatch as mismatch:
                raise _Mismatch(mismatch.kind, mismatch.detail, f"output {index + 1} of {len(expected)}") from None
        return tuple(items)
    if type(received) is not type(expected):
        raise _Mismatch("type", f"expected a {_type_name(expected)}, got {_describe_value(received)}")
    return received


def _check_tensor_structure(expected: torch.Tensor, received: Any) -> torch.Tensor:
    if type(received) is not torch.Tensor:
        if isinstance(received, torch.Tensor):
            raise _Mismatch("type", f"expected a plain torch.Tensor, got a {_type_name(received)} (a subclass of "
                            "torch.Tensor); return a plain tensor")
        raise _Mismatch("type", f"expected a torch.Tensor of shape {list(expected.shape)}, got {_describe_value(received)}")
    if received.device != expected.device:
        raise _Mismatch("device", f"expected a tensor on {expected.device}, got one on {received.device}")
    if received.layout != torch.strided:
        raise _Mismatch("layout", f"expected a dense tensor, got a {received.layout} one; return a dense tensor")
    if received.shape != expected.shape:
        raise _Mismatch("shape", f"expected {list(expected.shape)}, got {list(received.shape)}")
    if received.dtype != expected.dtype:
        raise _Mismatch("dtype", f"expected {expected.dtype}, got {received.dtype}")
    return received.detach()


def _as_number(received: Any) -> float | int:
    """A plain float or int from a float, int, numpy scalar or 0-d tensor; anything else is a type mismatch."""
    kind = type(received)
    if kind in (float, int):
        return received
    if isinstance(received, _NUMPY_NUMBERS) and kind.__module__ == "numpy":
        return received.item()
    if kind is torch.Tensor:
        if received.device.type != "cpu":
            raise _Mismatch("type", f"expected a number (float), got a tensor on the {received.device.type} device; "
                            "return a plain float")
        if received.dim() == 0 and not received.is_complex() and received.dtype != torch.bool:
            return received.item()
        raise _Mismatch("type", f"expected a number (float), got {_describe_value(received)}; return a plain float "
                        "(e.g. with .item())")
    if not isinstance(received, bool) and isinstance(received, (float, int, np.generic, torch.Tensor)):
        raise _Mismatch("type", f"expected a plain number (float), got a {_type_name(received)}; "
                        "return a plain float, e.g. float(x)")
    raise _Mismatch("type", f"expected a number (float), got {_describe_value(received)}")


def _compare_values(expected: Any, received: Any, atol: float, rtol: float) -> None:
    """Values of a structurally matching output; the message says how far off and which way, never the target."""
    if isinstance(expected, torch.Tensor):
        _compare_tensor_values(expected, received, atol, rtol)
    elif isinstance(expected, (float, int)) and not isinstance(expected, bool):
        _compare_number_values(expected, received, atol, rtol)
    elif isinstance(expected, tuple):
        for index, (exp, rec) in enumerate(zip(expected, received)):
            try:
                _compare_values(exp, rec, atol, rtol)
            except _Mismatch as mismatch:
                raise _Mismatch(mismatch.kind, mismatch.detail, f"output {index + 1} of {len(expected)}") from None
    elif not (expected is received or expected == received):
        raise _Mismatch("values", "yours differs from the reference")


def _tolerance(atol: float, rtol: float) -> str:
    return f"(tolerance atol={atol:g}, rtol={rtol:g})"


def _compare_number_values(expected: float, received: float, atol: float, rtol: float) -> None:
    if math.isnan(expected) or math.isnan(received):
        if math.isnan(expected) and math.isnan(received):
            return
        raise _Mismatch("values", "yours is nan (not a number)" if math.isnan(received) else "yours differs from the reference")
    if received == expected:
        return
    if math.isinf(received):
        raise _Mismatch("values", f"yours is {received} (not a finite number)")
    error = received - expected
    if abs(error) > atol + rtol * abs(expected):
        raise _Mismatch("values", _off_by(error, atol, rtol))


def _off_by(error: float, atol: float, rtol: float) -> str:
    """How far off a single number is, and which way: "yours is 0.42 too high (tolerance ...)"."""
    return f"yours is {_amount(abs(error))} {'too high' if error > 0 else 'too low'} {_tolerance(atol, rtol)}"


def _compare_tensor_values(expected: torch.Tensor, received: torch.Tensor, atol: float, rtol: float) -> None:
    exp, rec = expected.detach(), received.detach()
    if exp.is_complex():
        exp, rec = torch.view_as_real(exp.resolve_conj()), torch.view_as_real(rec.resolve_conj())
    exp, rec = exp.double(), rec.double()
    for bad, what in ((rec.isnan() & ~exp.isnan(), "nan{} (not a number)"),
                      (rec.isinf() & (rec != exp), "inf{} (not a finite number)"),
                      (exp.isnan() & ~rec.isnan(), "a value{} that differs from the reference")):
        if bad.any():
            where = f" at index {_index_of(int(bad.flatten().nonzero()[0]), exp.shape)}" if exp.dim() else ""
            raise _Mismatch("values", f"yours has {what.format(where)}")
    close = torch.isclose(rec, exp, atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return
    signed = (rec - exp).where(~close, 0.0).nan_to_num(nan=0.0, posinf=math.inf, neginf=-math.inf)
    flat = int(signed.abs().flatten().argmax())
    error = signed.flatten()[flat].item()
    if exp.dim() == 0:
        raise _Mismatch("values", _off_by(error, atol, rtol))
    raise _Mismatch("values", f"largest error {_amount(abs(error))} at index {_index_of(flat, exp.shape)}, "
                    f"{'yours too large' if error > 0 else 'yours too small'} {_tolerance(atol, rtol)}")


def _amount(size: float) -> str:
    """An error's size in a verdict: two significant digits (whole numbers from 100 to a million, not 1.2e+02)."""
    return f"{size:.0f}" if 100 <= size < 1e6 else f"{size:.2g}"


def _index_of(flat: int, shape: torch.Size) -> list[int]:
    return [int(i) for i in np.unravel_index(flat, tuple(shape))]




def _describe_value(value: Any) -> str:
    if type(value) is torch.Tensor:
        return f"a tensor of shape {list(value.shape)}"
    if value is None:
        return "None (did you forget to return?)"
    if type(value) is tuple:
        return f"a tuple of {len(value)} items"
    return f"a {_type_name(value)}"
