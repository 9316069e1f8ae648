"""Checkers for 07_capstone, part A (the pointer model): the task generator, the flip test, the readout's
attention on the addressed cell, and the per-(residual point, position) causal probe."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import torch

from utils import pointer
from utils.checking import Case, Exercise, keep_pristine, reference, register
from utils.exercises._inputs import (
    RANDOM_MODEL,
    causal_patterns,
    checker_model,
    ioi_structure_batch,
    randn,
    random_tokens,
)

# Tasks whose sizes differ from the course models' (8 and 32 cells), some with fewer cells than the address
# bits can name (a draw from 0 .. 2**A - 1 would address cells that do not exist).
TASKS = [pointer.PointerTask(m, a) for m, a in ((5, 3), (8, 3), (12, 4), (16, 4), (3, 2), (20, 5), (32, 5))]


def _task(rng: np.random.Generator) -> pointer.PointerTask:
    return TASKS[int(rng.integers(len(TASKS)))]


def _generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(1 << 30)))


# --- 07.1 sample_pointer: many right answers, so properties instead of values -----------------------
def _drawn(call: Callable[..., Any], task: pointer.PointerTask, n: int, generator: torch.Generator) -> torch.Tensor | str:
    """The learner's sequences, or what is wrong with their output's type, shape or values."""
    out = call(task, n, generator)
    shape = (n, task.memory_bits + task.address_bits + 1)
    if type(out) is not torch.Tensor or tuple(out.shape) != shape:
        return f"for M={task.memory_bits}, A={task.address_bits}, n={n} return a tensor of shape {list(shape)}"
    if out.dtype != torch.long:
        return f"return token ids (dtype torch.long, the models' input), not {out.dtype}"
    if not ((out == 0) | (out == 1)).all():
        return "every entry is a bit, 0 or 1 (the vocabulary is {0, 1})"
    return out


def _drawn_for(call: Callable[..., Any], case: Case) -> torch.Tensor | str:
    """`_drawn` on a property case's (task, n, generator), from a fresh generator with that generator's seed."""
    task, n, generator = case.args
    return _drawn(call, task, n, torch.Generator().manual_seed(generator.initial_seed()))


def _targets_follow_addresses(call, case: Case) -> str | None:
    task, n, _ = case.args
    seqs = _drawn_for(call, case)
    if isinstance(seqs, str):
        return seqs
    address = pointer.decode_address(seqs, task)
    if (address >= task.memory_bits).any():
        return (f"address {int(address.max())} appears with only {task.memory_bits} cells: draw the address from 0 .. M - 1, "
                f"not from all {2 ** task.address_bits} values the bits can write")
    wrong = seqs[:, -1] != seqs[torch.arange(n), address]
    if wrong.any():
        row = int(wrong.nonzero()[0, 0])
        return (f"row {row}: the address bits (most significant first) read {int(address[row])}, so the target is memory cell "
                f"{int(address[row])} = {int(seqs[row, address[row]])}; yours is {int(seqs[row, -1])}")
    return None


def _addresses_uniform(call, case: Case) -> str | None:
    from scipy.stats import chisquare

    task, n, _ = case.args
    seqs = _drawn_for(call, case)
    if isinstance(seqs, str):
        return seqs
    counts = torch.bincount(pointer.decode_address(seqs, task), minlength=task.memory_bits)
    if len(counts) > task.memory_bits or (counts == 0).any():
        return f"in {n} sequences some address of 0 .. {task.memory_bits - 1} never appears, or one beyond appears"
    p = chisquare(counts.numpy()).pvalue
    return None if p > 1e-4 else (
        f"the addresses of {n} sequences are not uniform over 0 .. {task.memory_bits - 1} (chi-square p = {p:.1e}; "
        f"counts {counts.tolist()})")


def _memory_random(call, case: Case) -> str | None:
    task, n, _ = case.args
    seqs = _drawn_for(call, case)
    if isinstance(seqs, str):
        return seqs
    memory = seqs[:, : task.memory_bits].float()
    share, per_cell = memory.mean().item(), memory.mean(0)
    if abs(share - 0.5) > 0.03 or (per_cell - 0.5).abs().max() > 0.1:
        return f"memory bits should be fair coin flips, independent per cell: {share:.2f} of them are 1"
    if len(torch.unique(seqs[:, : task.memory_bits], dim=0)) < n // 2:
        return "the rows share their memory: draw a fresh memory for every sequence"
    return None


def _same_seed_same_rows(call, case: Case) -> str | None:
    task, n, generator = case.args
    seed = generator.initial_seed()
    first = _drawn(call, task, n, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed + 1)  # disturb the global random state between the two calls
    torch.rand(17)
    second = _drawn(call, task, n, torch.Generator().manual_seed(seed))
    for drawn in (first, second):
        if isinstance(drawn, str):
            return drawn
    return None if torch.equal(first, second) else (
        "two generators with the same seed gave different sequences: draw with `generator=generator`, not the global "
        "random state")


def _generator_advances(call, case: Case) -> str | None:
    task, n, generator = case.args
    shared = torch.Generator().manual_seed(generator.initial_seed())
    first, second = _drawn(call, task, n, shared), _drawn(call, task, n, shared)
    for drawn in (first, second):
        if isinstance(drawn, str):
            return drawn
    return None if not torch.equal(first, second) else (
        "two calls with one generator gave the same sequences: draw from `generator` itself, so that it advances")


def _targets_fair(call, case: Case) -> str | None:
    """The target is memory[address]: a fair coin flip, independent from row to row (sd of each share: 0.5 / sqrt(n))."""
    task, n, _ = case.args
    seqs = _drawn_for(call, case)
    if isinstance(seqs, str):
        return seqs
    target = seqs[:, -1]
    ones, repeats = target.float().mean().item(), (target[1:] == target[:-1]).float().mean().item()
    if abs(ones - 0.5) > 0.05:
        return (f"{ones:.0%} of the {n} targets are 1: the target is memory[address], a fair coin flip, so the addressed "
                f"cell must stay as drawn (do not set or choose it)")
    if abs(repeats - 0.5) > 0.05:
        return (f"the target repeats the previous row's in {repeats:.0%} of rows: each row's memory (and so its target) "
                f"is drawn independently of the other rows")
    return None


def _addresses_independent(call, case: Case) -> str | None:
    """Rows 2i and 2i + 1 address a uniform pair of cells (chi-square over the M * M pairs)."""
    from scipy.stats import chisquare

    task, n, _ = case.args
    seqs = _drawn_for(call, case)
    if isinstance(seqs, str):
        return seqs
    address = pointer.decode_address(seqs, task)
    if (address >= task.memory_bits).any():
        return f"address {int(address.max())} appears with only {task.memory_bits} cells: draw it from 0 .. M - 1"
    M = task.memory_bits
    pairs = torch.bincount(address[0:n - 1:2] * M + address[1:n:2], minlength=M * M).numpy()
    p = chisquare(pairs).pvalue
    if p > 1e-6:
        return None
    follows = ((address[1:] - address[:-1]) % M == 1).float().mean().item()
    repeats = (address[1:] == address[:-1]).float().mean().item()
    return (f"the addresses of consecutive rows are not independent (chi-square over pairs of rows p = {p:.1e}; "
            f"{follows:.0%} of rows address the cell after the previous row's, {repeats:.0%} the same cell): draw every "
            f"row's address at random from the generator, not from the row number")


def _single_rows_vary(call, case: Case) -> str | None:
    """n = 1 with 40 generator seeds: the one row's address and target vary (all equal by chance: under 12 ** -39)."""
    task, _, generator = case.args
    rows = [_drawn(call, task, 1, torch.Generator().manual_seed(generator.initial_seed() + k)) for k in range(40)]
    for row in rows:
        if isinstance(row, str):
            return row
    seqs = torch.cat(rows)
    address = pointer.decode_address(seqs, task)
    if len(torch.unique(address)) == 1:
        return (f"with n = 1, generators with 40 different seeds all gave address {int(address[0])}: draw the address "
                f"at random (from the generator) for every row, even when n = 1")
    if len(torch.unique(seqs[:, -1])) == 1:
        return (f"with n = 1, generators with 40 different seeds all gave target {int(seqs[0, -1])}: the target is "
                f"memory[address], a fair coin flip")
    return None


def _sample_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", (_task(rng), int(rng.integers(1, 60)), _generator(rng))) for _ in range(n_random)]
    cases += [Case("edge", (pointer.PointerTask(8, 3), 1, _generator(rng)), "one sequence"),
              Case("edge", (pointer.PointerTask(2, 1), 5, _generator(rng)), "two cells, one address bit")]
    properties = [(_targets_follow_addresses, (5, 3), 3000, "target = memory[address] on every row, 5 cells, 3 bits"),
                  (_targets_follow_addresses, (32, 5), 500, "target = memory[address] on every row, pointer-32's sizes"),
                  (_addresses_uniform, (12, 4), 6000, "addresses uniform over 12 cells (chi-square)"),
                  (_addresses_uniform, (8, 3), 4000, "addresses uniform over 8 cells (chi-square)"),
                  (_memory_random, (16, 4), 2000, "fresh, fair memory bits in every row"),
                  (_same_seed_same_rows, (8, 3), 50, "the same generator seed gives the same sequences"),
                  (_generator_advances, (8, 3), 50, "each call draws new sequences from the generator"),
                  (_targets_fair, (16, 4), 4000, "targets are fair coin flips, independent from row to row"),
                  (_addresses_independent, (8, 3), 4000, "each row's address independent of the previous row's"),
                  (_single_rows_vary, (12, 4), 1, "n = 1: the address and target vary with the generator's seed")]
    return cases + [Case("property", (pointer.PointerTask(*sizes), n, _generator(rng)), label, probe)
                    for probe, sizes, n, label in properties]


register(Exercise("07.1", _sample_cases, compare_values=False))


# --- pointer models the checks run on ---------------------------------------------------------------
@cache
def degraded_pointer8():
    """pointer-8 with noise (0.2 of each weight's std) on every weight: accuracy about 0.73, so that a flip
    test comparing with the target, not with the model's own prediction, gives other numbers."""
    from utils.models import load_model

    with torch.random.fork_rng(devices=[]):
        model = load_model("pointer-8").eval()
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.numel() > 1:
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2 * parameter.std())
            model(torch.zeros(1, 2, dtype=torch.long))
    return keep_pristine(model)


@cache
def inverted_pointer8():
    """pointer-8 with its unembedding negated: it answers the other bit, so D = logit[answer] - logit[1 - answer]
    changes sign in every run and D_clean - D_flipped is negative. Recovery, a ratio of two such differences, is
    pointer-8's own; only a denominator made positive (an absolute value) tells them apart."""
    from utils.models import load_model

    with torch.random.fork_rng(devices=[]):
        model = load_model("pointer-8").eval()
    with torch.no_grad():
        model.W_U.neg_()  # [d_model, vocab], a view of the head's weight
        model(torch.zeros(1, 2, dtype=torch.long))
    return keep_pristine(model)


MODELS = {"pointer-8": lambda: checker_model("pointer-8"), "pointer-32": lambda: checker_model("pointer-32"),
          "pointer-8, degraded": degraded_pointer8, "pointer-8, inverted": inverted_pointer8}


def _pointer_inputs(rng: np.random.Generator, task: pointer.PointerTask, n: int) -> torch.Tensor:
    return pointer.inputs_and_targets(pointer.sample(task, n, _generator(rng)))[0]


def _model_and_inputs(rng: np.random.Generator, name: str, n: int):
    task = pointer.task_for(name.split(",")[0])
    return MODELS[name](), task, _pointer_inputs(rng, task, n)


# --- 07.2 flip_test ---------------------------------------------------------------------------------
def _flip_case(rng: np.random.Generator, name: str, n: int, kind: str = "random", probe=None, label: str = "") -> Case:
    model, task, inputs = _model_and_inputs(rng, name, n)
    others = pointer.other_cells(pointer.decode_address(inputs, task), task, _generator(rng))
    return Case(kind, (model, task, inputs, others), label or name, probe)


def _pair(got) -> tuple[float, float] | str:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a tuple of two floats: (share changed flipping the addressed cell, share changed flipping the other)"
    return float(got[0]), float(got[1])


def _addressed_as_other(call, case: Case) -> str | None:
    model, task, inputs, _ = case.args
    got = _pair(call(model, task, inputs, pointer.decode_address(inputs, task)))
    if isinstance(got, str):
        return got
    return None if got[0] == got[1] else (
        f"with `others` set to the addressed cells both flips are the same flip, so both shares must be equal; yours are "
        f"{got[0]:.3f} and {got[1]:.3f}")


def _bounds_from_accuracy(call, case: Case) -> str | None:
    """Exact bounds (methods.md E5.3, made exact): a prediction that is right before and after the addressed flip has
    changed, so that share is at least acc(before) + acc(after) - 1; after another cell's flip the prediction can
    change only if one of the two runs is wrong, so that share is at most the two error rates added."""
    model, task, inputs, others = case.args
    got = _pair(call(model, task, inputs, others))
    if isinstance(got, str):
        return got
    address = pointer.decode_address(inputs, task)

    def accuracy(batch: torch.Tensor) -> float:
        with torch.no_grad():
            return (model(batch)[:, -1].argmax(-1) == batch[torch.arange(len(batch)), address]).float().mean().item()

    base, addressed, other = (accuracy(x) for x in (inputs, pointer.flip_cells(inputs, address),
                                                    pointer.flip_cells(inputs, others)))
    if got[0] < base + addressed - 1 - 1e-6:
        return (f"the model is right on {base:.3f} of the rows and on {addressed:.3f} of them with the addressed cell "
                f"flipped, so at least {base + addressed - 1:.3f} of its predictions change; yours says {got[0]:.3f}")
    if got[1] > (1 - base) + (1 - other) + 1e-6:
        return (f"the model is wrong on {1 - base:.3f} of the rows and on {1 - other:.3f} with another cell flipped, so at "
                f"most {2 - base - other:.3f} of its predictions change; yours says {got[1]:.3f}")
    return None


def _flip_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    names = list(MODELS)
    cases = [_flip_case(rng, names[i % len(names)], int(rng.integers(20, 120))) for i in range(n_random)]
    cases += [_flip_case(rng, "pointer-8, degraded", 1, "edge", label="one sequence, a degraded pointer-8"),
              _flip_case(rng, "pointer-8, degraded", 400, "edge", label="a degraded pointer-8 (accuracy about 0.73)"),
              _flip_case(rng, "pointer-8, degraded", 60, "property", _addressed_as_other, "others = the addressed cells"),
              _flip_case(rng, "pointer-8, degraded", 800, "property", _bounds_from_accuracy,
                         "the shares against the accuracy (methods.md E5.3)")]
    return cases


register(Exercise("07.2", _flip_cases, n_random=5, atol=1e-6, rtol=0.0, diagnoses=[
    (lambda model, task, inputs, others: reference("07.2")(model, task, inputs, others)[::-1],
     "the two shares are swapped: (addressed, other)"),
]))


# --- 07.3 addressed_attention -----------------------------------------------------------------------
def _attention_case(rng: np.random.Generator, name: str, n: int, kind: str = "random", probe=None, label: str = "") -> Case:
    model, task, inputs = _model_and_inputs(rng, name, n)
    return Case(kind, (model, task, inputs), label or name, probe)


def _rows_independent(call, case: Case) -> str | None:
    """Each row's values depend on that row alone: reordering the rows reorders the output, exactly."""
    model, task, inputs = case.args
    got = call(model, task, inputs)
    shape = [len(inputs), model.cfg.n_layers, model.cfg.n_heads]
    if not isinstance(got, torch.Tensor) or list(got.shape) != shape:
        return f"return a tensor of shape {shape} ([example, layer, head])"
    if got.min() < 0 or got.max() > 1:
        return "attention weights lie in [0, 1]: read `hook_pattern` (after the softmax), not the scores"
    order = torch.arange(len(inputs) - 1, -1, -1)
    return None if torch.allclose(call(model, task, inputs[order]), got[order], atol=1e-6) else (
        "with the rows in reverse order the output should be the same rows reversed: each row reads its own "
        "addressed cell (index rows and keys together, not every row with every address)")


def _attention_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    names = list(MODELS)
    cases = [_attention_case(rng, names[i % len(names)], int(rng.integers(2, 50))) for i in range(n_random)]
    cases += [_attention_case(rng, "pointer-32", 1, "edge", label="one sequence, pointer-32 (3 layers, 4 heads)"),
              _attention_case(rng, "pointer-32", 9, "property", _rows_independent, "rows in reverse order")]
    return cases


register(Exercise("07.3", _attention_cases, atol=1e-6, rtol=1e-5, diagnoses=[
    (lambda model, task, inputs: reference("07.3")(model, task, inputs).mean(-1, keepdim=True).expand(-1, -1, model.cfg.n_heads),
     "the heads are averaged: keep one value per head"),
]))


# --- 07.4 patching_recovery -------------------------------------------------------------------------
def _recovery_case(rng: np.random.Generator, name: str, n: int, kind: str = "random", probe=None, label: str = "") -> Case:
    model, task, inputs = _model_and_inputs(rng, name, n)
    return Case(kind, (model, task, inputs), label or name, probe)


def _damaged_case(rng: np.random.Generator, n: int) -> Case:
    """Pairs on the damaged pointer-8 whose margin gap D_clean - D_corr is at least 2, so that the ratio is stable."""
    model, task, inputs = _model_and_inputs(rng, "pointer-8, degraded", 64)
    address = pointer.decode_address(inputs, task)
    ans = inputs.gather(1, address[:, None])  # [n, 1]
    with torch.no_grad():
        margin = [(logits.gather(1, ans) - logits.gather(1, 1 - ans))[:, 0]
                  for logits in (model(inputs)[:, -1], model(pointer.flip_cells(inputs, address))[:, -1])]
    gap = margin[0] - margin[1]
    return Case("random", (model, task, inputs[gap >= 2.0][:n]), "a damaged pointer-8 (accuracy about 0.73)")


def _exact_identities(call, case: Case) -> str | None:
    """methods.md E5.4: 1 at (embedding, addressed cell) and (last point, readout); 0 at (embedding, any other
    position); 0 before the addressed cell at every point (the causal mask)."""
    model, task, inputs = case.args
    got = call(model, task, inputs)
    n, T = inputs.shape
    shape = [n, model.cfg.n_layers + 1, T]
    if not isinstance(got, torch.Tensor) or list(got.shape) != shape:
        return f"return a tensor of shape {shape} ([pair, residual point, position]; the points: embedding, after each block)"
    rows, address = torch.arange(n), pointer.decode_address(inputs, task)
    if not torch.allclose(got[rows, 0, address], torch.ones(n), atol=1e-4):
        return ("restoring the addressed cell's embedding makes the flipped run the clean run, so recovery is 1 there; yours "
                f"is {got[rows, 0, address].tolist()}: is the corrupted run the one with the addressed cell flipped?")
    if not torch.allclose(got[:, -1, -1], torch.ones(n), atol=1e-4):
        return ("restoring the readout after the last block gives the clean logits, so recovery is 1 there; yours is "
                f"{got[:, -1, -1].tolist()}: are the points blocks.0.hook_in, then each block's hook_out?")
    elsewhere = torch.ones(n, T, dtype=torch.bool)
    elsewhere[rows, address] = False
    if got[:, 0][elsewhere].abs().max() > 1e-4:
        return "at the embedding only the addressed cell differs between the runs, so every other position recovers 0"
    before = torch.arange(T)[None, :] < address[:, None]  # [n, T]
    if got.permute(1, 0, 2)[:, before].abs().max() > 1e-4:
        return ("positions before the addressed cell never see the flip (causal mask): their recovery is 0 at every point; "
                "is the flip made at the addressed cell, and each position patched alone?")
    return None


def _recovery_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    # pointer-32 (3 layers, 4 heads, 37 positions: 148 patched runs a call, about 1.5 s) only in the property case,
    # to keep a check under about 5 s; the damaged pointer-8 gives recoveries between 0 and 1 (the trained pointer-8's
    # are all near 0 or 1, where a probability would give the same ratios as a logit difference).
    cases = [_recovery_case(rng, "pointer-8", int(rng.integers(2, 6))) if i % 2 else _damaged_case(rng, int(rng.integers(3, 6)))
             for i in range(n_random)]
    cases += [_recovery_case(rng, "pointer-8", 1, "edge", label="one pair"),
              _recovery_case(rng, "pointer-8, inverted", 3, "edge",
                             label="pointer-8 with its unembedding negated: D_clean - D_flipped is negative"),
              _recovery_case(rng, "pointer-8", 4, "property", _exact_identities, "exact identities, pointer-8"),
              _recovery_case(rng, "pointer-32", 2, "property", _exact_identities, "exact identities, pointer-32")]
    return cases


def _noising(model, task, inputs):  # the corrupted run's residual patched into the clean run
    flipped = pointer.flip_cells(inputs, pointer.decode_address(inputs, task))
    return 1 - reference("07.4")(model, task, flipped)


register(Exercise("07.4", _recovery_cases, n_random=3, atol=1e-3, rtol=1e-3, timeout_s=30.0, diagnoses=[
    (_noising, ("this is noising (the flipped run's state patched into the clean run): restore the clean state in the "
                "flipped run")),
]))


# --- Part B: 07.5 value_weighted_attention, 07.6 resample_ablation ----------------------------------
def _vw_case(rng: np.random.Generator, label: str = "random", kind: str = "random", probe=None) -> Case:
    batch, heads, pos, d_head, d_model = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(2, 9)),
                                          int(rng.integers(2, 9)), int(rng.integers(8, 24)))
    pattern = causal_patterns(rng, batch, heads, pos)
    v, W_O = randn(rng, batch, pos, heads, d_head), randn(rng, heads, d_head, d_model, scale=0.3)
    return Case(kind, (pattern, v, W_O), label, probe)


def _equal_norms_scale_the_pattern(call, case: Case) -> str | None:
    pattern, v, W_O = case.args
    heads, d_head, d_model = W_O.shape
    rows = torch.linalg.qr(torch.from_numpy(np.random.default_rng(7).standard_normal((d_model, d_model))).float())[0]
    orthonormal = rows[: heads * d_head].reshape(heads, d_head, d_model) if heads * d_head <= d_model else None
    if orthonormal is None:
        return None
    same = 2.5 * v / v.norm(dim=-1, keepdim=True)  # every value vector of norm 2.5, and W_O keeps norms
    got = call(pattern, same, orthonormal)
    if not isinstance(got, torch.Tensor) or got.shape != pattern.shape:
        return f"return a tensor of the pattern's shape {list(pattern.shape)} ([batch, head, query, key])"
    return None if torch.allclose(got, 2.5 * pattern, atol=1e-4) else (
        "when every key sends a vector of norm 2.5 the result must be 2.5 times the pattern; yours is not: multiply "
        "each weight by the norm of v_key W_O (no renormalising, and the key's norm, not the query's)")


def _vw_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_vw_case(rng) for _ in range(n_random)]
    model = checker_model("ioi-lm")
    tokens = random_tokens(model, rng, 2, 7)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    layer = int(rng.integers(model.cfg.n_layers))
    cases.append(Case("edge", (cache[f"blocks.{layer}.attn.hook_pattern"], cache[f"blocks.{layer}.attn.hook_v"],
                               model.W_O[layer].detach()), "ioi-lm's own pattern, values and W_O"))
    cases.append(_vw_case(rng, "every value vector of the same norm", "property", _equal_norms_scale_the_pattern))
    return cases


register(Exercise("07.5", _vw_cases, atol=1e-4, rtol=1e-4, diagnoses=[
    (lambda pattern, v, W_O: pattern * v.norm(dim=-1).transpose(1, 2).unsqueeze(2),
     "this is the norm of v alone: what a key sends is v W_O, so take the norm after W_O"),
    (lambda pattern, v, W_O: reference("07.5")(pattern, v, W_O) / reference("07.5")(pattern, v, W_O).sum(-1, keepdim=True),
     "the rows are renormalised to sum to 1: keep the weight times the norm as it is"),
]))


def _some_heads(model, rng: np.random.Generator) -> list[tuple[int, int]]:
    n = int(rng.integers(1, 4))
    picks = rng.choice(model.cfg.n_layers * model.cfg.n_heads, n, replace=False)
    return [(int(i) // model.cfg.n_heads, int(i) % model.cfg.n_heads) for i in picks]


def _clean_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens)[:, -1]


def _no_heads_is_clean(call, case: Case) -> str | None:
    model, tokens, _ = case.args
    got, want = call(model, tokens, []), _clean_logits(model, tokens)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return f"return the final position's logits, a tensor of shape {list(want.shape)} ([batch, vocab])"
    return None if torch.allclose(got, want, atol=1e-4) else "with no heads to ablate the logits must be the clean run's"


def _one_prompt_repeated_is_clean(call, case: Case) -> str | None:
    model, tokens, heads = case.args
    same = tokens[:1].expand(3, -1).clone()
    got, want = call(model, same, heads), _clean_logits(model, same)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return f"return the final position's logits, a tensor of shape {list(want.shape)} ([batch, vocab])"
    return None if torch.allclose(got, want, atol=1e-4) else (
        "with one prompt repeated, the previous prompt's outputs are the prompt's own, so nothing may change; yours "
        "does: are the ablated outputs taken from the same run's other prompts (roll(1, 0) over the batch)?")


def _resample_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    model = checker_model("ioi-lm")
    cases = [Case("random", (model, ioi_structure_batch(model, rng).clean, _some_heads(model, rng))) for _ in range(n_random)]
    small = checker_model(RANDOM_MODEL)
    cases.append(Case("edge", (small, random_tokens(small, rng, 3, 8), _some_heads(small, rng)),
                      "a 3-layer model with 3 heads, random tokens"))
    for probe, label in ((_no_heads_is_clean, "no heads"), (_one_prompt_repeated_is_clean, "one prompt repeated")):
        cases.append(Case("property", (model, ioi_structure_batch(model, rng).clean, _some_heads(model, rng)), label, probe))
    return cases


register(Exercise("07.6", _resample_cases, atol=1e-4, rtol=1e-4, timeout_s=30.0, diagnoses=[
    (lambda model, tokens, heads: _clean_logits(model, tokens), ("nothing is ablated: the hook must write the other "
                                                                 "prompt's output for each listed head into a clone of z "
                                                                 "and return it")),
]))
