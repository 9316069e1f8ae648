"""Notebooks survive a real learner: re-run cells, other model shapes, unsolved exercises.

Each test runs notebooks in a real kernel (tests/kernel.py), as JupyterLab would.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tests.kernel import ROOT, describe, run_notebook
from utils.authoring import build

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
GPT2_SMALL_SHAPE = dict(n_layer=12, n_head=12, n_embd=768)  # GPT-2 small; the vocabulary is the course's


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_cell_runs_again_after_the_whole_notebook(path: Path):
    """No hidden state: after Run All, running every cell once more, in order, in the same kernel works."""
    first, second = run_notebook(nbformat.read(path, as_version=4), passes=2)
    assert not [describe(r) for r in first if r.error]
    assert not [describe(r) for r in second if r.error], "a cell fails when re-run after the whole notebook"


@pytest.fixture(scope="module")
def gpt2_shaped_model(tmp_path_factory) -> Path:
    """A randomly initialised GPT-2 small (12 layers, 12 heads, d_model 768) on the course tokenizer, built offline."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from utils.tokenizer import save_tokenizer

    folder = tmp_path_factory.mktemp("gpt2-shaped")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=593, n_positions=1024, bos_token_id=0, eos_token_id=0, pad_token_id=1,
                        tie_word_embeddings=True, **GPT2_SMALL_SHAPE)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    save_tokenizer(folder)
    return folder


GPT2_PRELUDE = '''
import utils.corpus as corpus
import utils.models as models
from transformer_lens.model_bridge import TransformerBridge

def load_model(name="course-lm", *, checkpoint=None, compat=False, device="cpu"):
    """Every model the notebook asks for becomes the GPT-2-shaped one."""
    model = TransformerBridge.boot_transformers({folder!r}, device=device)
    if compat:
        model.enable_compatibility_mode()
    return model.eval()

models.load_model = load_model
# The same code paths on one row: a GPT-2-sized forward pass costs 50 times course-lm's.
_held_out_batch, _repeated = corpus.held_out_batch, corpus.repeated_random_tokens
corpus.held_out_batch = lambda n, length, **kwargs: _held_out_batch(1, length, **kwargs)
corpus.repeated_random_tokens = lambda batch=10, length=25, seed=0: _repeated(1, length, seed)
_full_parts = corpus.full_length_parts  # full_length_contexts and full_length_documents draw through it
corpus.full_length_parts = lambda n, n_ctx=64, seed=10_000, *args, **kwargs: _full_parts(1, n_ctx, seed, *args, **kwargs)
import utils.probing as probing
_split = probing.split_by_sentence
probing.split_by_sentence = lambda n_train, n_test: _split(min(n_train, 60), min(n_test, 12))
import torch
import utils.facts as facts
import utils.tracing as tracing
_prompts, _noise, _summarize = facts.prompts, tracing.gaussian_noise, tracing.summarize
facts.prompts = lambda n=None, split="train phrasings", seed=0: _prompts(3, split, seed)
tracing.recalled = lambda model, prompts: torch.ones(len(prompts), dtype=torch.bool)  # a random model recalls nothing
tracing.gaussian_noise = lambda shape, std, seed: _noise((1, *shape[1:]), std, seed)  # one noise sample
tracing.summarize = lambda model, prompts, n_facts=100, samples=10, **kwargs: _summarize(model, prompts, 2, 1, **kwargs)
import functools
import utils.ioi as ioi
import utils.relative_attention as relative_attention
_ioi_prompts, _firings = ioi.prompts, relative_attention.firings
ioi.prompts = lambda n, split="train", seed=0: _ioi_prompts(min(n, 2), split, seed)
relative_attention.firings = lambda cache, n_layers, first_layer=1: _firings(cache, n_layers, first_layer)[::97][:40]
relative_attention.trace_prompt = functools.partial(relative_attention.trace_prompt, max_firings=12)
import utils.patching as patching
_patch = patching.patch  # the same code path for one site, its result copied to every site of a grid
patching.patch = lambda model, target, source_cache, sites, max_rows=256: _patch(
    model, target, source_cache, sites[:1], max_rows).expand(len(sites), -1, -1)
import utils.pointer as pointer
_pointer_sample, _pointer_balanced = pointer.sample, pointer.balanced_sample
pointer.task_for = lambda name: pointer.PointerTask(4, 2)  # tokens 0 and 1 exist in any vocabulary; 6 positions
pointer.sample = lambda task, n, generator=None: _pointer_sample(task, min(n, 8), generator)
pointer.balanced_sample = lambda task, per_address, generator=None: _pointer_balanced(task, 1, generator)
'''
CHECK_CELL = re.compile(r'^(\w+ = )?check\("\d\d\.\d+", \w+\)$')


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_notebook_code_runs_on_a_model_with_gpt2_small_shapes(path: Path, gpt2_shaped_model: Path):
    """The GPT-2 switch is real: nothing hard-codes course-lm's 6 layers, 4 heads or d_model 128.

    Runs the learner's view of the solved notebook (instructor asserts, which pin course-lm's heads,
    removed; check cells skipped) with every load_model returning a random model of GPT-2 small's shape
    (d_mlp 3072 too), and the corpus's batch helpers returning one row.
    """
    learner_view = build.student_notebook(nbformat.read(path, as_version=4), path.relative_to(ROOT), solved=True)
    for cell in learner_view.cells:  # checkers always run on the course models: not this test's concern
        if cell.cell_type == "code" and CHECK_CELL.match(cell.source.strip()):
            cell.source = "pass"
    (runs,) = run_notebook(learner_view, prelude=GPT2_PRELUDE.format(folder=str(gpt2_shaped_model)))
    assert not [describe(r) for r in runs if r.error]
    assert "12 layers" in "".join(r.text for r in runs) or path.name.startswith("03")


STUDENT_NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NOT_IMPLEMENTED = re.compile(r"^(\d\d\.\d+) is not implemented yet$")


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: p.name)
def test_an_unsolved_notebook_runs_top_to_bottom_on_the_reference(path: Path):
    """Run All on a fresh student notebook: each check says the exercise is not implemented and that the
    cells below use the reference, in exactly two lines, and no cell raises."""
    (runs,) = run_notebook(nbformat.read(path, as_version=4))
    assert not [describe(r) for r in runs if r.error]
    check_runs = [r for r in runs if CHECK_CELL.match(r.source.strip())]
    assert check_runs
    for run in check_runs:
        exercise_id = re.search(r'check\("(\d\d\.\d+)"', run.source).group(1)
        assert run.text.splitlines() == [f"{exercise_id} is not implemented yet",
                                         f"{exercise_id}: the cells below use the course's reference solution until yours passes"]


def test_in_a_release_an_unsolved_exercise_stops_run_all_with_one_line(released: Path):
    """A release has no reference to fall back on: the first unsolved check stops the run, in one line."""
    prelude = f"""
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]  # the release's utils, not ours
sys.path.insert(0, {str(released)!r})
"""
    notebook = nbformat.read(released / "notebooks" / "00_orientation.ipynb", as_version=4)
    (runs,) = run_notebook(notebook, prelude=prelude, cwd=released / "notebooks")
    first_error = next(r for r in runs if r.error)
    assert CHECK_CELL.match(first_error.source.strip()) and 'check("00.1"' in first_error.source
    assert first_error.text.splitlines() == ["00.1 is not implemented yet"]
    assert first_error.error["ename"] == "ExerciseRequired"
    assert first_error.error["traceback"] == ["solve exercise 00.1 (per_token_loss) above first: the cells below need it"]
    assert not (released / "utils" / "reference").exists()


def test_notebook_tests_run_this_checkout_whatever_kernel_is_installed():
    """A user-wide "python3" kernel spec may point at another environment; tests run this one's code."""
    import sys

    cell = nbformat.v4.new_code_cell("import sys, utils; print(sys.executable); print(utils.__file__)")
    (runs,) = run_notebook(nbformat.v4.new_notebook(cells=[cell]))
    executable, utils_file = runs[0].text.splitlines()
    assert executable == sys.executable and utils_file == str(ROOT / "utils" / "__init__.py")
