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


def balanced_sample(task: PointerTask, per_address: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random sequences with every address exactly `per_address` times, in address order: [M * per_address, M + A + 1].

    The memory bits are uniform, as in `sample`; only the address marginal is fixed, so that figures averaged
    per address are not noisier for the addresses a random draw happened to visit less often.
    """
    address = torch.arange(task.memory_bits).repeat_interleave(per_address)  # [n]
    memory = torch.randint(0, 2, (len(address), task.memory_bits), generator=generator)  # [n, M]
    target = memory.gather(1, address[:, None])  # [n, 1]
    return torch.cat([memory, encode_address(address, task.address_bits), target], dim=1)


# ---------------------------------------------------------------- reading the readout's attention


def mean_by_address(per_example: torch.Tensor, address: torch.Tensor, memory_bits: int) -> torch.Tensor:
    """Mean of per-example scores [n, ...] over the examples of each address: -> [M, ...] (NaN where none)."""
    sums = torch.zeros(memory_bits, *per_example.shape[1:]).index_add_(0, address, per_example.float())
    counts = torch.bincount(address, minlength=memory_bits).float()  # [M]
    counts = counts.view(-1, *[1] * (per_example.dim() - 1))
    return sums / counts.where(counts > 0, torch.tensor(float("nan")))


def clean_spikes(by_address: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Whether some single head puts at least `threshold` on the addressed cell: [M, layer, head] -> [M] bool."""
    return (by_address >= threshold).flatten(1).any(dim=1)


# ---------------------------------------------------------------- the causal probe: residual patching

POSITION_CLASSES = ("addressed cell", "other memory", "address bits", "readout")
EARLIER_MEMORY = "memory before the addressed cell"  # a check: the causal mask makes its recovery exactly 0


def residual_points(model) -> list[str]:
    """Hook names of the residual stream: the embedding (tokens + positions, block 0's input), then after
    each block. The rows of a recovery table, in order."""
    return ["blocks.0.hook_in"] + [f"blocks.{layer}.hook_out" for layer in range(model.cfg.n_layers)]


def position_masks(inputs: torch.Tensor, task: PointerTask) -> dict[str, torch.Tensor]:
    """Boolean masks [n, T] of each position class of inputs [n, T]: the addressed cell, the other memory
    cells, the address bits before the readout, the readout (the last position, also the address's least
    significant bit), and the memory cells before the addressed cell."""
    n, T = inputs.shape
    position = torch.arange(T)[None, :]  # [1, T]
    address = decode_address(inputs, task)[:, None]  # [n, 1]
    memory = position < task.memory_bits  # [1, T]
    masks = {"addressed cell": position == address,
             "other memory": memory & (position != address),
             "address bits": (position >= task.memory_bits) & (position < T - 1),
             "readout": position == T - 1,
             EARLIER_MEMORY: position < address}
    return {k: v.expand(n, T) for k, v in masks.items()}


def recovery_by_class(recovery: torch.Tensor, inputs: torch.Tensor, task: PointerTask,
                      keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per-position recoveries [n, point, T] averaged within each position class of each pair, then over the
    pairs kept (`keep` [n] bool, default all): -> [point, class], the classes POSITION_CLASSES then
    EARLIER_MEMORY (a class with no position in a pair, such as the memory before cell 0, counts as 0 there)."""
    keep = torch.ones(len(inputs), dtype=torch.bool) if keep is None else keep
    masks = position_masks(inputs, task)
    columns = []
    for cls in (*POSITION_CLASSES, EARLIER_MEMORY):
        mask = masks[cls][:, None, :].float()  # [n, 1, T]
        per_pair = (recovery * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # [n, point]
        columns.append(per_pair[keep].mean(0))
    return torch.stack(columns, dim=1)
