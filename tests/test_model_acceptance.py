"""Acceptance criteria of the committed course models (offline). A model's tests skip only while its
folder does not exist yet; once it exists, every criterion must hold."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import time  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from utils import corpus, pointer  # noqa: E402
from utils.analysis import causal_trace, metrics  # noqa: E402
from utils.zoo import model_card  # noqa: E402
from utils.zoo.model_card import corpus_contexts  # noqa: E402
from utils.models import MODELS_DIR, list_checkpoints, load_model  # noqa: E402

COURSE_MODELS = ["course-lm", "attn-only-2l", "pointer-8", "pointer-32"]
LOAD_SECONDS = 2.0  # generous; the model card records the measured time (well under a second)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def load_or_skip(name: str):
    if not (MODELS_DIR / name).is_dir():
        pytest.skip(f"models/{name}/ does not exist yet")
    return load_model(name)


@pytest.fixture(scope="module")
def course_lm():
    return load_or_skip("course-lm")


@pytest.fixture(scope="module")
def attn_only():
    return load_or_skip("attn-only-2l")


@pytest.fixture(scope="module")
def repeated() -> torch.Tensor:
    return corpus.repeated_random_tokens(batch=20, length=25, seed=0)  # [20, 51]


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_loads_fast(name):
    load_or_skip(name)  # the first load pays for lazy imports
    start = time.perf_counter()
    load_model(name)
    assert time.perf_counter() - start < LOAD_SECONDS


# ---------------------------------------------------------------- course-lm


def test_course_lm_in_context_copying(course_lm, repeated):
    first, second = metrics.repeated_half_losses(course_lm, repeated)
    assert second <= 0.3 * first, (first, second)


def test_course_lm_induction_heads(course_lm, repeated):
    scores = metrics.head_scores(course_lm, repeated)
    assert (scores.induction >= 0.7).sum() >= 2, scores.induction


def test_course_lm_previous_token_head(course_lm, repeated):
    scores = metrics.head_scores(course_lm, repeated)
    assert (scores.previous_token >= 0.7).sum() >= 1, scores.previous_token


def test_course_lm_ioi(course_lm):
    result = metrics.ioi_scores(course_lm, corpus.ioi_prompts(200, seed=0))
    assert result.top1 >= 0.95 and result.logit_diff >= 3.0, result


def test_course_lm_fact_recall(course_lm):
    assert metrics.fact_recall(course_lm, corpus.fact_prompts(seed=0)) >= 0.95


def test_course_lm_bos_sink(course_lm):
    sinks = metrics.bos_sink_scores(course_lm, corpus_contexts(32, course_lm.cfg.n_ctx))[1:]  # [layer - 1, head]
    assert (sinks >= 0.3).float().mean() >= 0.25, sinks


@pytest.fixture(scope="module")
def trace_summary(course_lm) -> causal_trace.TraceSummary:
    return causal_trace.summarize(course_lm, corpus.fact_prompts(seed=0), n_facts=100)


def test_course_lm_causal_trace_early_site(course_lm, trace_summary):
    early_or_middle = list(range(0, course_lm.cfg.n_layers - 2))  # 6 layers: 0-3
    assert trace_summary.n_facts >= 100
    assert trace_summary.last_subject[early_or_middle].max() >= 0.3, trace_summary.last_subject


# Known gap, kept at the bar (strict: an XPASS after retraining fails and asks to drop the mark).
@pytest.mark.xfail(strict=True, reason="measured: restoring the last token recovers 0.35 after block 3, 0.40 after "
                                       "block 4 and 1.00 only after the final block; see models/README.md")
def test_course_lm_causal_trace_late_site(course_lm, trace_summary):
    n = course_lm.cfg.n_layers
    late = list(range(n - n // 3, n))  # 6 layers: 4-5
    assert (trace_summary.last_token[late] >= 0.7).all(), trace_summary.last_token


# ---------------------------------------------------------------- attn-only-2l


def test_attn_only_has_an_induction_head(attn_only, repeated):
    assert metrics.head_scores(attn_only, repeated).induction.max() >= 0.8


def test_attn_only_induction_rises_over_checkpoints(attn_only, repeated):
    steps = list_checkpoints("attn-only-2l")
    assert len(steps) >= 2, "attn-only-2l needs training checkpoints"
    first, last = (metrics.head_scores(load_model("attn-only-2l", checkpoint=s), repeated).induction.max().item()
                   for s in (steps[0], steps[-1]))
    assert last >= first + 0.3, (first, last)


# ---------------------------------------------------------------- pointer models


@pytest.mark.parametrize("name", list(pointer.TASKS))
def test_pointer_model(name):
    model, task = load_or_skip(name), pointer.task_for(name)
    assert (MODELS_DIR / name / "model.safetensors").stat().st_size < 2_000_000
    assert metrics.pointer_accuracy(model, task, n=10_000, seed=123) >= 0.99
    flips = metrics.flip_test(model, task, n=600, seed=123)
    assert flips.addressed >= 0.98 and flips.other <= 0.02, flips


@pytest.fixture(scope="module")
def pointer8():
    return load_or_skip("pointer-8")


@pytest.fixture(scope="module")
def pointer32():
    return load_or_skip("pointer-32")


@pytest.mark.xfail(strict=True, reason="issue 11: no seed of the pointer-8 recipe trained so far (0 of 7, "
                   "models/pointer-8/seeds.json) has a legible readout; the committed seed is a typical one")
def test_pointer8_readout_is_legible(pointer8):
    task = pointer.task_for("pointer-8")
    r = metrics.pointer_readout(pointer8, task, n=4000, seed=123)
    assert r.per_head[-1].max().item() >= 0.5, r.per_head  # the last layer's readout on the addressed cell
    assert r.spike_count >= model_card.LEGIBLE_SPIKES["pointer-8"], (r.spike_count, r.by_address.flatten(1))
    assert r.legible(model_card.LEGIBLE_SPIKES["pointer-8"])


def test_pointer32_readout_is_near_uniform_for_most_addresses(pointer32):
    task = pointer.task_for("pointer-32")
    r = metrics.pointer_readout(pointer32, task, n=4000, seed=123)
    near = (r.by_address < model_card.NEAR_UNIFORM).float().mean(0)  # [layer, head]: share of addresses
    assert (near >= model_card.MOST_ADDRESSES).all(), near  # every layer and head: near uniform on most addresses
    assert r.spike_count < task.memory_bits // 2, r.spike_count  # clean single-head spikes are the exception


@pytest.mark.parametrize("name", list(pointer.TASKS))
def test_pointer_patching_recovery_table(name):
    model, task = load_or_skip(name), pointer.task_for(name)
    result = metrics.pointer_patching_recovery(model, task, n=200, seed=123)
    assert result.pairs >= 100 and result.recovery.shape == (model.cfg.n_layers + 1, 5)
    assert result.at(0, "addressed cell") == pytest.approx(1.0, abs=1e-3)  # the flip lives there at the embedding
    assert result.at(-1, "readout") == pytest.approx(1.0, abs=1e-3)  # the logits read the last layer's readout
    assert result.at(0, "other memory") == 0.0 and result.at(-1, "addressed cell") == 0.0
    earlier = result.recovery[:, result.classes.index(metrics.EARLIER_MEMORY)]
    assert earlier.abs().max().item() < 1e-6, earlier  # cells before the addressed one: causal mask
