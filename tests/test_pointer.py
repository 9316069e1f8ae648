"""The pointer task generator, its helpers, and the flip test on hand-built oracle models."""

import json

import pytest
import torch
from scipy.stats import chisquare

from utils import pointer
from utils.analysis import metrics
from utils.zoo import train, training

TASK = pointer.PointerTask(8, 3)


def test_sequence_layout_and_targets():
    seqs = pointer.sample(TASK, 500, torch.Generator().manual_seed(0))
    assert seqs.shape == (500, 8 + 3 + 1)
    assert set(seqs.unique().tolist()) <= {0, 1}
    for row in seqs.tolist():
        memory, bits, target = row[:8], row[8:11], row[11]
        address = bits[0] * 4 + bits[1] * 2 + bits[2]  # most significant bit first
        assert address < 8
        assert target == memory[address]


def test_address_marginal_is_uniform():
    task = pointer.PointerTask(32, 5)
    seqs = pointer.sample(task, 20_000, torch.Generator().manual_seed(1))
    counts = torch.bincount(pointer.decode_address(seqs, task), minlength=32)
    assert len(counts) == 32  # no address beyond the memory
    assert chisquare(counts.numpy()).pvalue > 0.001


def test_encode_decode_round_trip():
    address = torch.arange(32)
    digits = pointer.encode_address(address, 5)
    assert digits[5].tolist() == [0, 0, 1, 0, 1]
    padded = torch.cat([torch.zeros(32, 32, dtype=torch.long), digits], dim=1)
    assert torch.equal(pointer.decode_address(padded, pointer.PointerTask(32, 5)), address)


def test_too_few_address_bits_rejected():
    with pytest.raises(ValueError):
        pointer.PointerTask(9, 3)


def test_flip_cells_and_other_cells():
    inputs = torch.zeros(4, 11, dtype=torch.long)
    flipped = pointer.flip_cells(inputs, torch.tensor([0, 3, 7, 7]))
    assert flipped.sum().item() == 4 and flipped[1, 3] == 1 and inputs.sum() == 0
    address = torch.randint(0, 8, (5000,), generator=torch.Generator().manual_seed(0))
    others = pointer.other_cells(address, TASK, torch.Generator().manual_seed(1))
    assert (others != address).all() and others.min() >= 0 and others.max() < 8
    assert len(others.unique()) == 8


class Oracle(torch.nn.Module):
    """Reads the addressed bit exactly; logits [batch, pos, 2] with the answer at every position."""

    def __init__(self, task: pointer.PointerTask, constant: bool = False):
        super().__init__()
        self.task, self.constant = task, constant

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        answer = torch.zeros(len(inputs), dtype=torch.long)
        if not self.constant:
            answer = inputs.gather(1, pointer.decode_address(inputs, self.task)[:, None])[:, 0]
        logits = torch.nn.functional.one_hot(answer, 2).float() * 10  # [batch, 2]
        return logits[:, None].expand(-1, inputs.shape[1], -1)


def test_oracle_is_perfect_on_accuracy_and_flip_test():
    oracle = Oracle(TASK)
    assert metrics.pointer_accuracy(oracle, TASK, n=2000) == 1.0
    flips = metrics.flip_test(oracle, TASK, n=600)
    assert flips.addressed == 1.0 and flips.other == 0.0


def test_constant_model_never_follows_a_flip():
    constant = Oracle(TASK, constant=True)
    assert 0.4 < metrics.pointer_accuracy(constant, TASK, n=4000) < 0.6
    flips = metrics.flip_test(constant, TASK, n=600)
    assert flips.addressed == 0.0 and flips.other == 0.0


def test_smoke_training_writes_a_loadable_model(tmp_path):
    training.main(train.RECIPES, ["pointer-8", "--smoke", "--out", str(tmp_path / "p8")])
    record = json.loads((tmp_path / "p8" / "training.json").read_text())
    assert record["steps"] == 20 and 0.0 <= record["final_accuracy"] <= 1.0
    config = json.loads((tmp_path / "p8" / "native_config.json").read_text())
    assert config["n_ctx"] == TASK.context and config["d_vocab"] == 2


def test_seeded_recipes_differ_only_in_their_seed():
    from dataclasses import replace

    from utils.zoo import train_pointer

    for name, committed in train_pointer.COMMITTED_SEEDS.items():
        shipped, other = train.RECIPES[name], train_pointer.seeded(name, committed + 1)
        assert shipped.config.seed == committed and other.config.seed == committed + 1
        assert replace(other.config, seed=committed) == shipped.config


def test_balanced_sample_visits_every_address_equally():
    task = pointer.PointerTask(12, 4)
    seqs = pointer.balanced_sample(task, 5, torch.Generator().manual_seed(0))
    address = pointer.decode_address(seqs, task)
    assert seqs.shape == (60, 12 + 4 + 1) and torch.bincount(address).tolist() == [5] * 12
    assert torch.equal(seqs[:, -1], seqs[torch.arange(60), address])
    again = pointer.balanced_sample(task, 5, torch.Generator().manual_seed(0))
    assert torch.equal(seqs, again)


def test_mean_by_address_and_clean_spikes():
    scores = torch.tensor([[[0.2]], [[0.6]], [[0.9]]])  # [n, layer, head]
    by_address = pointer.mean_by_address(scores, torch.tensor([0, 2, 2]), 3)
    assert by_address[0, 0, 0] == pytest.approx(0.2) and by_address[1].isnan().all()
    assert by_address[2, 0, 0] == pytest.approx(0.75)
    assert pointer.clean_spikes(by_address).tolist() == [False, False, True]


def test_recovery_by_class_averages_each_class_of_each_pair():
    task = pointer.PointerTask(4, 2)
    inputs = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 1]])  # addresses 2 and 1; T = 6
    recovery = torch.arange(12, dtype=torch.float).view(2, 1, 6)  # [pair, point, position]
    table = pointer.recovery_by_class(recovery, inputs, task)
    masks = pointer.position_masks(inputs, task)
    assert masks["addressed cell"].nonzero()[:, 1].tolist() == [2, 1]
    # pair 0: cell 2, other memory (0 + 1 + 3) / 3, address bit 4, readout 5, earlier (0 + 1) / 2
    # pair 1: cell 7, other memory (6 + 8 + 9) / 3, address bit 10, readout 11, earlier 6
    want = [(2 + 7) / 2, (4 / 3 + 23 / 3) / 2, (4 + 10) / 2, (5 + 11) / 2, (0.5 + 6) / 2]
    assert table.shape == (1, 5) and torch.allclose(table[0], torch.tensor(want))
    kept = pointer.recovery_by_class(recovery, inputs, task, keep=torch.tensor([False, True]))
    assert torch.allclose(kept[0], torch.tensor([7.0, 23 / 3, 10.0, 11.0, 6.0]))


def test_notebook_07_solutions_agree_with_the_model_cards_library():
    """Notebook 07 teaches the flip test, the readout's attention and the causal probe as exercises; on the
    shipped pointer models their solutions must give the model card's figures (utils.analysis.metrics)."""
    from utils.models import load_model
    from utils.reference import nb07

    model, task = load_model("pointer-8"), TASK
    generator = torch.Generator().manual_seed(3)
    inputs, _ = pointer.inputs_and_targets(pointer.sample(task, 200, generator))
    others = pointer.other_cells(pointer.decode_address(inputs, task), task, generator)
    library = metrics.flip_test(model, task, n=200, seed=3)  # the same draws, in the same order
    assert nb07.flip_test(model, task, inputs, others) == (library.addressed, library.other)

    readout = metrics.attention_patterns(model, inputs)[:, :, :, -1]  # [layer, n, head, key]
    torch.testing.assert_close(nb07.addressed_attention(model, task, inputs),
                               metrics.addressed_cell_attention(readout, pointer.decode_address(inputs, task)))

    # Single-position classes (the addressed cell, the readout): patching one position is patching the class.
    sequences = pointer.sample(task, 40, torch.Generator().manual_seed(4))
    library = metrics.pointer_patching_recovery(model, task, n=40, seed=4)
    inputs, _ = pointer.inputs_and_targets(sequences)
    with torch.no_grad():
        table = pointer.recovery_by_class(nb07.patching_recovery(model, task, inputs), inputs, task)
    for cls in ("addressed cell", "readout", pointer.EARLIER_MEMORY):
        column = pointer.POSITION_CLASSES.index(cls) if cls in pointer.POSITION_CLASSES else -1
        torch.testing.assert_close(table[:, column], library.recovery[:, library.classes.index(cls)], atol=1e-4, rtol=0)
    assert library.pairs == library.tried  # no pair dropped, so the plain means compare
