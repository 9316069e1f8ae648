"""Acceptance criteria of the committed course models (offline). A model's tests skip only while its
folder does not exist yet; once it exists, every criterion must hold."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from utils import backcopy, corpus, facts, ioi, pointer, tracing  # noqa: E402
from utils.analysis import metrics  # noqa: E402
from utils.zoo import model_card  # noqa: E402
from utils.models import MODELS_DIR, list_checkpoints, load_model  # noqa: E402

COURSE_MODELS = ["course-lm", "ioi-lm", "facts-lm", "attn-only-2l", "backcopy-lm", "pointer-8", "pointer-32"]


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


# ---------------------------------------------------------------- facts-lm
@pytest.fixture(scope="module")
def facts_lm():
    return load_or_skip("facts-lm")


@pytest.fixture(scope="module")
def facts_trace(facts_lm) -> tracing.TraceSummary:
    """100 recalled facts, fresh noise per fact, 3 samples each (notebook 05's protocol, other prompts: seed 21).
    facts-lm is the course's causal-tracing model (notebook 05): ROME's bars are measured on it, not on course-lm."""
    prompts = facts.prompts(200, "train phrasings", seed=21)
    return tracing.summarize(facts_lm, prompts, n_facts=100, samples=3, kinds=("resid", "mlp", "attn"), window=1,
                             progress=False)


@pytest.mark.parametrize("split", facts.SPLITS)
def test_facts_lm_recalls_on_held_out_phrasings_and_clauses(facts_lm, split):
    recall = tracing.recalled(facts_lm, facts.prompts(300, split, seed=21)).float().mean().item()
    assert recall >= 0.95, f"{split}: top-1 recall {recall:.3f}"


def test_facts_lm_late_site(facts_trace):
    """ROME's late site: the last token's hidden state in the upper layers recovers most of the effect."""
    late = facts_trace.last_token
    assert late.low[: -1].max() > 0.7, late.mean.tolist()


def test_facts_lm_early_site(facts_lm, facts_trace):
    """ROME's early site: restoring the last subject token after a block in the first half recovers half the gap.
    Seed-dependent (models/facts-lm/seeds.json: met on the shipped seed 0, not on every seed of the recipe)."""
    first_half = list(range(facts_lm.cfg.n_layers // 2))
    assert facts_trace.n_facts >= 100 and facts_trace.last_subject.mean[first_half].max() >= 0.5


def test_facts_lm_later_mlps_carry_part_of_the_early_site(facts_lm):
    """ROME's severing test (their Figure 3), which notebook 05 teaches beside the MLP sets below: with the MLP outputs
    at the last subject token kept corrupted in every block after the restored one, the hidden state restored after
    block 0 loses a tenth or more of the effect, fact by fact, with a 95 % interval above 0.05; keeping the later
    attention corrupted instead loses less. The bars were written for the GPT-2 facts-lm (0.14 [0.11, 0.17] of 0.53,
    attention 0.02); the parallel-layout facts-lm shipped 2026-12-06 loses 0.27 through the MLPs and 0.16 through the
    attention on these prompts (its later attention at the subject reads the clan token, noise and all), so the
    attention clause is now "less", where it was "less than half" of the MLPs' for the GPT-2 model."""
    t = model_card.severed_summary(facts_lm, facts.prompts(200, "train phrasings", seed=21))
    mlps, attention = t["lost"]["later MLPs"], t["lost"]["later attention"]
    assert t["n_facts"] >= 100 and t["layers"][0] == 0
    assert mlps["mean"][0] >= 0.1 and mlps["low"][0] > 0.05, mlps
    assert attention["mean"][0] < mlps["mean"][0], attention


def test_facts_lm_early_site_is_not_carried_by_the_first_mlp_alone(facts_lm):
    """Subject enrichment, not a token lookup: at the last subject token the MLPs after block 0, restored together
    (ROME restores several MLPs at once, each adding little), recover a tenth of the gap or more, and block 0's MLP
    alone falls short of all the MLPs restored together by as much, fact by fact; both with 95 % intervals above 0.05.
    The sequential facts-lm shipped until 2026-12-06 failed both: the later MLPs together 0.03 [0.01, 0.05], block 0's
    alone 0.60 of all the MLPs' 0.60 (100 facts, 3 draws each)."""
    restored = model_card.mlp_sets(facts_lm, facts.prompts(200, "train phrasings", seed=21))["restored"]
    later, short = restored["later blocks"], restored["all but block 0's"]
    assert later["mean"] >= 0.1 and later["low"] > 0.05, restored
    assert short["mean"] >= 0.1 and short["low"] > 0.05, restored


def test_facts_lm_attention_trace_peaks_at_the_last_token(facts_trace):
    peaks = {name: e.mean.max().item() for name, e in facts_trace.by_class["attn"].items()}
    assert max(peaks, key=peaks.get) == "last", peaks


def test_facts_lm_recipe_seeds_and_the_shipped_seed(facts_lm):
    """The card's seed table: at least 5 seeds, each recalling >= 0.95 on every split. The sites are seed-dependent
    (the card counts the seeds that have each): the shipped seed has the late site before the last block, the early
    site's size (without being the best seed by it) and the later MLPs' share at the subject, and is that seed's
    weights (its recall, measured now, is the table's)."""
    import json
    from utils.zoo.train_lm import FACTS_LM_CONFIG
    record = json.loads((MODELS_DIR / "facts-lm" / "seeds.json").read_text())
    seeds, shipped = record["seeds"], str(FACTS_LM_CONFIG.seed)
    assert len(seeds) >= 5 and record["committed"] == FACTS_LM_CONFIG.seed
    for seed, f in seeds.items():
        assert min(f["recall"].values()) >= 0.95, (seed, f["recall"])
    first_half = facts_lm.cfg.n_layers // 2
    early = {seed: max(f["last_subject"][:first_half]) for seed, f in seeds.items()}
    assert early[shipped] >= 0.5 and max(early, key=early.get) != shipped, early
    ours = seeds[shipped]
    assert max(ours["last_token"][:-1]) >= 0.7 and ours["attn_peak"] == "last", ours
    assert ours["mlp_sets"]["later blocks"] >= 0.1 and ours["mlp_sets"]["all but block 0's"] >= 0.1, ours["mlp_sets"]
    for split in facts.SPLITS:
        measured = tracing.recalled(facts_lm, facts.prompts(300, split, seed=model_card.SEED)).float().mean().item()
        assert abs(measured - seeds[shipped]["recall"][split]) < 1e-9, split


# ---------------------------------------------------------------- ioi-lm
@pytest.fixture(scope="module")
def ioi_lm():
    return load_or_skip("ioi-lm")


@pytest.fixture(scope="module")
def ioi_splits(ioi_lm) -> dict:
    return {split: ioi.scores(ioi_lm, ioi.prompts(200, split, seed=0)) for split in ioi.SPLITS}


@pytest.mark.parametrize("split", ioi.SPLITS)
def test_ioi_lm_generalises_to_held_out_structures_and_names(ioi_splits, split):
    """Top-1 over the whole vocabulary >= 0.9 on every split, and the ABC counterfactual collapses the logit difference."""
    scores = ioi_splits[split]
    assert scores["top1"] >= 0.9 and scores["logit_diff"] >= 3.0, scores
    assert abs(scores["abc_logit_diff"]) <= 0.15 * scores["logit_diff"], scores


def test_ioi_lm_has_name_mover_heads(ioi_lm):
    """A head attends from the end to IO and removing its output there costs >= 10 % of the logit difference;
    on held-out structures and names, so the heads carry the algorithm, not a memorised template."""
    effects = model_card.ioi_head_effects(ioi_lm, ioi.prompts(96, "held-out both", seed=1))
    assert model_card.name_movers(effects), effects


def test_ioi_lm_recipe_seeds_and_the_shipped_seed(ioi_splits):
    """The card's seed table: at least 5 seeds, every one generalising to held-out structures. Held-out names
    (>= 0.9 on both name splits) and a name-mover head by the card's rule are seed-dependent: the shipped seed
    has both, is not the best seed by held-out-name top-1, and is that seed's weights."""
    import json
    from utils.zoo.train_lm import IOI_LM_CONFIG
    seeds = json.loads((MODELS_DIR / "ioi-lm" / "seeds.json").read_text())
    assert len(seeds) >= 5
    for seed, record in seeds.items():
        assert record["splits"]["held-out families"]["top1"] >= 0.9, (seed, record)
    shipped = str(IOI_LM_CONFIG.seed)
    names = {seed: min(r["splits"]["held-out names"]["top1"], r["splits"]["held-out both"]["top1"]) for seed, r in seeds.items()}
    assert names[shipped] >= 0.9 and seeds[shipped]["name_movers"], seeds[shipped]
    assert max(names, key=names.get) != shipped, names
    assert all(abs(ioi_splits[split]["top1"] - seeds[shipped]["splits"][split]["top1"]) < 1e-9 for split in ioi.SPLITS)


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


@pytest.fixture(scope="module")
def sinks(course_lm) -> dict:
    return model_card.sink_figures(course_lm, *model_card.held_out_documents("course-lm", 64))


def test_course_lm_has_no_position_0_sinks_on_its_text(sinks):
    """What notebook 01 teaches about course-lm: no head beyond layer 0 reaches alpha_0 0.3 on full-length held-out
    text (uniform 0.074); its heads rest on the start of the document they read (the tests below). Issue 11's bar
    for sinks at full length is carried by backcopy-lm (test_backcopy_lm_sinks_at_full_length), whose heads have a
    part-time job; course-lm's recipe did not get there (weight decay, lr, related documents, longer training, one
    document per context: utils/zoo/train_lm.py)."""
    assert sinks["length"] == 64 and sinks["uniform"] < 0.1
    assert sinks["text"]["share"] == 0.0 and max(max(row) for row in sinks["text"]["alpha"][1:]) < 0.3, sinks["text"]


def test_course_lm_heads_rest_on_the_start_of_the_document_they_read(sinks):
    # What the heads do on text instead (notebook 01): BOS while the first document is read, the full stop that
    # ended the previous one after it; more heads rest there than on position 0 (0.20 of the heads on the document's
    # start, 4 of 20, on the training mix).
    start = sinks["document_start"]
    assert start["share"] > sinks["text"]["share"] and start["uniform"] < 0.1, start
    assert start["largest_on_bos_after_a_document"] < 0.1, start
    assert set(start["heads"]) & set(sinks["random_words"]["heads"]), (start["heads"], sinks["random_words"])


def test_course_lm_resting_weight_is_a_sink(course_lm, sinks):
    # The weight those heads put on the document's start can move to another empty key (BOS) for free, but not
    # onto a word: a sink, not a read (notebook 01). Other texts than the card's: seed 30_000.
    text, ends = model_card.held_out_documents("course-lm", 64, seed=30_000)
    moved = model_card.resting_weight_moved(course_lm, text, ends, sinks["document_start"]["heads"])
    assert abs(moved["to_bos"]) < 0.05 and abs(moved["to_previous_start"]) < 0.05, moved
    assert moved["to_first_word"] > 4 * moved["standard_error"]["to_first_word"], moved  # onto a word: a cost
    # Gu et al.'s other signature: for most of those heads the resting key writes less than an average key.
    assert sum(ratio < 1 for ratio in moved["value_at_rest"].values()) > len(moved["heads"]) / 2, moved


def test_course_lm_sinks_on_random_words_at_full_length(sinks):
    # Seed-dependent: 5 sink heads on the shipped seed, 0 to 4 on the other runs (models/course-lm/seeds.json;
    # notebook 01 shows the table). The shipped seed is the recipe's default seed, not chosen among them.
    assert sinks["length"] == 64 and sinks["random_words"]["share"] >= 0.25, sinks["random_words"]


def test_course_lm_recipe_seeds_and_the_shipped_seed(course_lm, repeated, sinks):
    """The card's seed table: at least 3 seeds, each with an induction head >= 0.7, IOI on the training templates
    and fact recall >= 0.95, and (the runs measured on text) more heads resting on the current document's start than
    on position 0. Seed-dependent, so counted by the card rather than asserted run by run: a second induction head
    (5 of 6 runs), sink heads on random words (0 to 5); the shipped row is the shipped weights."""
    from utils.zoo.train_lm import COURSE_LM_CONFIG
    record = model_card.seeds_record("course-lm")
    assert len(record["seeds"]) >= 3 and record["committed"] == COURSE_LM_CONFIG.seed
    assert sum("text" in f["sinks"] for f in record["seeds"].values()) >= 3  # the spread on text: 3 runs or more
    for seed, f in record["seeds"].items():
        assert max(x for row in f["induction"] for x in row) >= 0.7, seed
        assert f["ioi_top1"] >= 0.95 and f["fact_recall"] >= 0.95, seed
        if "text" in f["sinks"]:  # runs whose weights were not kept were not re-measured on text (their note)
            assert f["sinks"]["document_start"]["share"] > f["sinks"]["text"]["share"], seed
    shipped = record["seeds"][str(COURSE_LM_CONFIG.seed)]
    measured = metrics.head_scores(course_lm, repeated)
    assert torch.allclose(measured.induction, torch.tensor(shipped["induction"]), atol=1e-6)
    assert torch.allclose(measured.previous_token, torch.tensor(shipped["previous_token"]), atol=1e-6)
    assert [tuple(head) for head in shipped["sinks"]["document_start"]["heads"]] == sinks["document_start"]["heads"]


# ---------------------------------------------------------------- backcopy-lm
@pytest.fixture(scope="module")
def backcopy_lm():
    return load_or_skip("backcopy-lm")


@pytest.fixture(scope="module")
def copier(backcopy_lm) -> dict:
    return model_card.backcopy_figures(backcopy_lm)


def test_backcopy_lm_copies(copier):
    assert copier["copy_accuracy"] >= 0.99, copier["copy_accuracy"]


def test_backcopy_lm_sinks_at_full_length(copier):
    """Issue 11's bar, on the model notebook 01 teaches sinks with: a quarter of the heads beyond layer 0 are sinks
    on full-length held-out contexts and on random words, far above the uniform baseline at that length."""
    assert copier["length"] == 64 and copier["uniform"] < 0.1
    assert copier["text"]["share"] >= 0.25 and copier["random_words"]["share"] >= 0.25, (copier["text"], copier["random_words"])


def test_backcopy_lm_sink_heads_are_active_dormant(copier):
    """Guo et al.'s active-dormant heads: at least a quarter of the heads beyond layer 0 work where the language gives
    them a job (under 0.1 on BOS from the copy positions) and rest on BOS from every other query (0.5 or more).
    Measured on the recipe's seeds 0 and 1 before shipping: 7 of 8 on both (utils/zoo/train_lm.py)."""
    n_later = sum(len(row) for row in copier["bos_at_copy"][1:])
    active_dormant = [(l, h) for l in range(1, len(copier["bos_at_copy"])) for h in range(len(copier["bos_at_copy"][l]))
                      if copier["bos_at_copy"][l][h] < 0.1 and copier["bos_elsewhere"][l][h] >= 0.5]
    assert len(active_dormant) >= n_later / 4, (copier["bos_at_copy"], copier["bos_elsewhere"])


def test_backcopy_lm_sink_belongs_to_position_0_and_to_bos(copier):
    """Measured before shipping (seeds 0, 1): with BOS dropped, so that a word is at position 0, 0.75-1.00 of the heads
    beyond layer 0 stay sinks (position 0 keeps them, as Xiao et al. found in large models; course-lm's need BOS),
    and BOS moved to the middle still draws 0.40-0.49 from the sink heads (uniform 0.02): both."""
    assert copier["no_bos_share"] >= 0.5 * copier["text"]["share"], copier["no_bos_share"]
    assert copier["moved_bos"]["sink_heads_on_bos"] > 10 * copier["moved_bos"]["uniform"], copier["moved_bos"]


def test_backcopy_lm_sink_writes_almost_nothing_and_that_belongs_to_bos(copier):
    """Gu et al.'s small value: through every sink head BOS writes (|v W_O|) under half of what an average later key
    writes, and less than 1 % of the later keys write less; with BOS dropped, the word at position 0 writes over half
    of an average key through every head, so the small value is the token's, not the position's. My bars, with margin:
    measured before they were written, BOS 0.10-0.27 and no key below it, a word at position 0 0.69-0.92."""
    bos, word = copier["writes"]["bos"], copier["writes"]["word_at_0"]
    assert len(bos) == len(copier["text"]["heads"]) > 0
    assert all(w["ratio"] < 0.5 and w["keys_below"] < 0.01 for w in bos.values()), bos
    assert all(w["ratio"] > 0.5 for w in word.values()), word


def test_backcopy_lm_recipe_seeds_and_the_shipped_seed(copier):
    """The card's seed table: at least 3 seeds, each with the sink bar on held-out contexts and on random words and each
    having learned the copy (top-1 >= 0.95; 0.989-0.996 over seeds 0-4, the shipped model's own bar is 0.99 above);
    BOS writing under half an average key through every sink head on every seed; the shipped seed is the recipe's
    default seed, and its row is the shipped weights, measured now."""
    from utils.zoo.train_lm import BACKCOPY_LM_CONFIG
    record = model_card.seeds_record("backcopy-lm")
    seeds = record["seeds"]
    assert len(seeds) >= 3 and record["committed"] == BACKCOPY_LM_CONFIG.seed
    for seed, f in seeds.items():
        assert f["copy_accuracy"] >= 0.95 and min(f["text"]["share"], f["random_words"]["share"]) >= 0.25, (seed, f)
        assert f["bos_writes_at_most"] < 0.5, (seed, f)  # the small value on every seed (0.21-0.34 over seeds 0-4)
    shipped = seeds[str(BACKCOPY_LM_CONFIG.seed)]
    assert abs(shipped["text"]["share"] - copier["text"]["share"]) < 1e-9 and abs(shipped["loss"] - copier["loss"]) < 1e-6


# ---------------------------------------------------------------- attn-only-2l


def test_attn_only_has_an_induction_head(attn_only, repeated):
    assert metrics.head_scores(attn_only, repeated).induction.max() >= 0.8


def test_attn_only_induction_rises_over_checkpoints(attn_only, repeated):
    steps = list_checkpoints("attn-only-2l")
    assert len(steps) >= 2, "attn-only-2l needs training checkpoints"
    first, last = (metrics.head_scores(load_model("attn-only-2l", checkpoint=s), repeated).induction.max().item()
                   for s in (steps[0], steps[-1]))
    assert last >= first + 0.3, (first, last)


def test_attn_only_recipe_seeds_and_the_shipped_seed(attn_only, repeated):
    """The card's seed table: at least 3 seeds, each with an induction head >= 0.8 and a phase change (best induction
    first >= 0.5 at a snapshot); the shipped row is the shipped weights, measured now."""
    from utils.zoo.train_lm import ATTN_ONLY_2L_CONFIG
    record = model_card.seeds_record("attn-only-2l")
    assert len(record["seeds"]) >= 3 and record["committed"] == ATTN_ONLY_2L_CONFIG.seed
    for seed, f in record["seeds"].items():
        assert max(map(max, f["induction"])) >= 0.8, seed
        assert model_card.phase_change_step(f["checkpoint_induction"]) is not None, seed
    shipped = record["seeds"][str(ATTN_ONLY_2L_CONFIG.seed)]
    measured = metrics.head_scores(attn_only, repeated)
    assert torch.allclose(measured.induction, torch.tensor(shipped["induction"]), atol=1e-6)
    assert torch.allclose(measured.previous_token, torch.tensor(shipped["previous_token"]), atol=1e-6)


# ---------------------------------------------------------------- pointer models


@pytest.mark.parametrize("name", list(pointer.TASKS))
def test_pointer_model(name):
    model, task = load_or_skip(name), pointer.task_for(name)
    assert (MODELS_DIR / name / "model.safetensors").stat().st_size < 2_000_000
    assert metrics.pointer_accuracy(model, task, n=10_000, seed=123) >= 0.99
    flips = metrics.flip_test(model, task, n=600, seed=123)
    assert flips.addressed >= 0.98 and flips.other <= 0.02, flips


# the property each pointer model is in the course for, as recorded per seed in seeds.json
POINTER_PROPERTY = {"pointer-8": lambda f: f["legible"],
                    "pointer-32": lambda f: f["min_near_uniform_share"] >= model_card.MOST_ADDRESSES}


@pytest.mark.parametrize("name", list(pointer.TASKS))
def test_pointer_recipe_has_three_seeds_and_commits_a_fair_one(name):
    """Issue 11: >= 3 seeds per recipe, and the committed seed is one that has the property the course uses
    (the property is seed-dependent) or, where no seed has it, the median seed: never the best by selection."""
    model, record = load_or_skip(name), model_card.seeds_record(name)
    seeds, committed = record["seeds"], str(record["committed"])
    assert len(seeds) >= 3, sorted(seeds)
    having = [s for s, f in seeds.items() if POINTER_PROPERTY[name](f)]
    if having:
        assert committed in having, (committed, having)
    else:
        by_best_head = sorted(seeds, key=lambda s: seeds[s]["best_head"])
        assert committed == by_best_head[(len(seeds) - 1) // 2], (committed, by_best_head)
    # the committed weights are that seed: its recorded figures are the shipped model's
    readout = metrics.pointer_readout(model, pointer.task_for(name), n=4000, seed=model_card.SEED)
    assert readout.best == pytest.approx(seeds[committed]["best_head"], abs=1e-4)


@pytest.fixture(scope="module")
def pointer8():
    return load_or_skip("pointer-8")


@pytest.fixture(scope="module")
def pointer32():
    return load_or_skip("pointer-32")


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
