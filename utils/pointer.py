"""The pointer task: read one bit of a binary memory at a binary address.

A sequence is `[M memory bits][A address bits, most significant first][target]`, vocabulary {0, 1},
with `target = memory[address]` and the address uniform over 0..M-1 (Towell, *Inductive Biases in
Neural Networks*, ch. 7). A model reads `sequence[:, :-1]` (length T = M + A) and predicts the target
at its last position, which is also the address's least significant bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PointerTask:
    """Sizes of one pointer task: `memory_bits` cells addressed by `address_bits` bits."""

    memory_bits: int
    address_bits: int

    def __post_init__(self) -> None:
        if 2**self.address_bits < self.memory_bits:
            raise ValueError(f"{self.address_bits} address bits cannot address {self.memory_bits} cells")

    @property
    def context(self) -> int:
        """Length T = M + A of the model's input."""
        return self.memory_bits + self.address_bits

    @property
    def readout(self) -> int:
        """Position at which the model predicts the target (the last input position)."""
        return self.context - 1


TASKS: dict[str, PointerTask] = {"pointer-8": PointerTask(8, 3), "pointer-32": PointerTask(32, 5)}


def task_for(name: str) -> PointerTask:
    """The task a course pointer model was trained on, by model name."""
    if name not in TASKS:
        raise KeyError(f"no pointer task for {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def sample(task: PointerTask, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`n` random sequences `[memory][address][target]`, shape [n, M + A + 1], dtype long."""
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)  # [n, M]
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)  # [n]
    target = memory.gather(1, address[:, None])  # [n, 1]
    return torch.cat([memory, encode_address(address, task.address_bits), target], dim=1)


def encode_address(address: torch.Tensor, bits: int) -> torch.Tensor:
    """Binary digits of each address, most significant first: [n] -> [n, bits]."""
    shifts = torch.arange(bits - 1, -1, -1)  # [bits]
    return (address[:, None] >> shifts) & 1


def decode_address(sequences: torch.Tensor, task: PointerTask) -> torch.Tensor:
    """The address encoded in sequences (or model inputs) of shape [n, >= M + A]: -> [n]."""
    digits = sequences[:, task.memory_bits : task.context]  # [n, A]
    weights = 2 ** torch.arange(task.address_bits - 1, -1, -1)  # [A]
    return (digits * weights).sum(dim=1)


def inputs_and_targets(sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sequences [n, T + 1] into model inputs [n, T] and targets [n]."""
    return sequences[:, :-1], sequences[:, -1]


def flip_cells(inputs: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Copy of inputs [n, T] with memory cell `cells[i]` of row i flipped (0 <-> 1)."""
    flipped = inputs.clone()
    rows = torch.arange(len(inputs))
    flipped[rows, cells] = 1 - flipped[rows, cells]
    return flipped


def other_cells(address: torch.Tensor, task: PointerTask, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each address [n], a uniformly random memory cell different from it: -> [n]."""
    offset = torch.randint(1, task.memory_bits, address.shape, generator=generator)  # [n]
    return (address + offset) % task.memory_bits
