"""Metrics on synthetic inputs with answers worked out by hand, and causal-trace identities."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch

from utils import corpus, pointer
from utils import tracing
from utils.analysis import metrics
from utils.models import build_native

HALF = 5  # len(r) in [BOS] + r + r
T = 1 + 2 * HALF


def perfect_induction() -> torch.Tensor:
    """[1, 1, T, T]: first-copy tokens attend to themselves; second-copy token q attends to q - HALF + 1."""
    pattern = torch.zeros(1, 1, T, T)
    for q in range(T):
        pattern[0, 0, q, q if q <= HALF else q - HALF + 1] = 1.0
    return pattern


def previous_token() -> torch.Tensor:
    pattern = torch.zeros(1, 1, T, T)
    pattern[0, 0, 0, 0] = 1.0
    for q in range(1, T):
        pattern[0, 0, q, q - 1] = 1.0
    return pattern


def causal_uniform(n: int = T) -> torch.Tensor:
    return torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]


def test_perfect_induction_pattern():
    pattern = perfect_induction()
    assert metrics.induction_score(pattern, HALF).item() == pytest.approx(1.0)
    assert metrics.previous_token_score(pattern).item() == pytest.approx(0.0)


def test_previous_token_pattern():
    pattern = previous_token()
    assert metrics.previous_token_score(pattern).item() == pytest.approx(1.0)
    assert metrics.induction_score(pattern, HALF).item() == pytest.approx(0.0)


def test_causal_uniform_pattern_matches_analytic_means():
    pattern = causal_uniform()[None, None]  # [1, 1, T, T]
    second_half = [1 / (i + 1) for i in range(HALF + 1, T)]  # queries of the second copy
    after_first = [1 / (i + 1) for i in range(1, T)]  # every query with a previous token
    every = [1 / (i + 1) for i in range(T)]
    assert metrics.induction_score(pattern, HALF).item() == pytest.approx(sum(second_half) / HALF)
    assert metrics.previous_token_score(pattern).item() == pytest.approx(sum(after_first) / (T - 1))
    assert metrics.bos_sink_score(pattern).item() == pytest.approx(sum(every) / T)
    k = 3  # Gu et al.: alpha_k = mean over t >= k of A[t, k]
    assert metrics.key_attention(pattern, k).item() == pytest.approx(sum(1 / (t + 1) for t in range(k, T)) / (T - k))


def test_all_on_bos_is_a_full_sink():
    pattern = torch.zeros(2, 3, T, T)
    pattern[..., 0] = 1.0
    assert torch.allclose(metrics.bos_sink_score(pattern), torch.ones(3))
    assert metrics.sink_rate(pattern[None], 0, 0.3) == pytest.approx(100.0)
    assert metrics.sink_rate(pattern[None], 1, 0.3) == pytest.approx(0.0)


def test_sink_rate_counts_sample_layer_heads_above_eps():
    patterns = causal_uniform(8)[None, None, None].repeat(2, 1, 4, 1, 1)  # [layer 2, batch 1, head 4, 8, 8]
    patterns[0, 0, 0] = 0
    patterns[0, 0, 0, :, 0] = 1  # one of the 8 (sample, layer, head) triples is a sink
    # causal-uniform alpha_0 = mean(1/(t+1), t < 8) = 2.718/8 = 0.34 > 0.3, so the others count at eps=0.3
    assert metrics.sink_rate(patterns, 0, 0.3) == pytest.approx(100.0)
    assert metrics.sink_rate(patterns, 0, 0.5) == pytest.approx(100.0 / 8)


class Uniform(torch.nn.Module):
    """Logits that are equal everywhere: the loss is log(vocab) at every position."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*tokens.shape, self.vocab)


def test_losses_of_a_uniform_predictor():
    tokens = torch.randint(0, 7, (3, T), generator=torch.Generator().manual_seed(0))
    losses = metrics.loss_by_position(Uniform(7), tokens)
    assert losses.shape == (T - 1,)
    assert torch.allclose(losses, torch.full((T - 1,), math.log(7)))
    first, second = metrics.repeated_half_losses(Uniform(7), tokens)
    assert first == pytest.approx(math.log(7)) and second == pytest.approx(math.log(7))
    assert metrics.mean_loss(Uniform(7), tokens) == pytest.approx(math.log(7))


class Copier(torch.nn.Module):
    """Predicts the token HALF - 1 positions back (a perfect induction model on [BOS] + r + r)."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*tokens.shape, 50)
        for q in range(HALF, tokens.shape[1]):
            logits[torch.arange(len(tokens)), q, tokens[:, q - HALF + 1]] = 20.0
        return logits


def test_repeated_half_losses_split_at_the_copies():
    tokens = torch.randint(1, 50, (4, HALF))
    repeated = torch.cat([torch.zeros(4, 1, dtype=torch.long), tokens, tokens], dim=1)  # [4, T]
    first, second = metrics.repeated_half_losses(Copier(), repeated)
    assert first == pytest.approx(math.log(50), rel=1e-3)
    assert second < 1e-6


@pytest.fixture(scope="module")
def biased_lm(tmp_path_factory):
    """A native bridge with the course tokenizer whose logits are its unembedding bias at every position."""
    from transformers import AutoTokenizer

    from utils.tokenizer import save_tokenizer

    folder = tmp_path_factory.mktemp("tok")
    save_tokenizer(folder)
    vocab = corpus.token_ids()
    config = dict(d_model=16, d_head=8, n_heads=2, n_layers=1, n_ctx=64, d_vocab=len(vocab), d_mlp=32, act_fn="gelu",
                  normalization_type="LN", seed=0)
    model = build_native(config, AutoTokenizer.from_pretrained(str(folder)))
    state = model.state_dict()
    state["unembed.weight"].zero_()
    state["unembed.bias"].zero_()
    state["unembed.bias"][vocab["mary"]] = 5.0
    state["unembed.bias"][vocab["john"]] = 2.0
    state["unembed.bias"][vocab["peru"]] = 1.0
    model.load_state_dict(state)
    return model


def test_ioi_scores_on_known_logits(biased_lm):
    texts = ["when mary and john went to the store , john gave a drink to",
             "mary and john went to the garden . john gave a flower to"]  # two lengths
    right = [SimpleNamespace(text=t, io="mary", s="john") for t in texts]
    wrong = [SimpleNamespace(text=t, io="john", s="mary") for t in texts]
    assert metrics.ioi_scores(biased_lm, right) == metrics.IOIResult(top1=1.0, logit_diff=3.0)
    assert metrics.ioi_scores(biased_lm, right + wrong) == metrics.IOIResult(top1=0.5, logit_diff=0.0)


def test_fact_recall_on_known_logits(biased_lm):
    facts = corpus.fact_prompts(10)
    expected = sum(p.answer == "mary" for p in facts) / len(facts)  # "mary" always wins
    assert metrics.fact_recall(biased_lm, facts) == pytest.approx(expected)
    renamed = [SimpleNamespace(text=p.text, answer="mary") for p in facts]
    assert metrics.fact_recall(biased_lm, renamed) == 1.0


def test_uniform_key_attention_is_the_mean_of_one_over_prefix_length():
    assert metrics.uniform_key_attention(1) == 1.0
    assert metrics.uniform_key_attention(2) == pytest.approx((1 + 1 / 2) / 2)
    assert metrics.uniform_key_attention(4, key=2) == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert metrics.uniform_key_attention(64) == pytest.approx(0.0742, abs=1e-4)  # the 0.07 at 64 tokens
    assert metrics.uniform_key_attention(19) == pytest.approx(0.19, abs=0.01)  # and 0.19 at 19


def test_sink_report_counts_heads_beyond_layer_0(random_lm):
    tokens = torch.randint(0, 40, (3, 12), generator=torch.Generator().manual_seed(0))
    report = metrics.sink_report(random_lm, tokens, eps=0.0)  # every head is a sink at eps 0
    assert report.share == 1.0 and len(report.heads) == 2 * 4 and report.length == 12
    assert report.uniform == pytest.approx(metrics.uniform_key_attention(12))
    alpha = metrics.bos_sink_scores(random_lm, tokens)  # [layer, head]
    assert torch.equal(report.alpha, alpha)
    strict = metrics.sink_report(random_lm, tokens, eps=alpha[1:].max().item() + 1e-6)
    assert strict.share == 0.0 and strict.heads == []


def test_document_start_attention_follows_the_latest_document_end():
    #                BOS  a    b    .    c    .    d    .    e     (the full stop at 5 sits inside the second document)
    ends = torch.tensor([[0, 0, 0, 1, 0, 0, 0, 1, 0]]).bool()  # [batch, key]
    starts = [0, 0, 0, 0, 3, 3, 3, 3, 7]  # [query]: BOS up to and including the first document's end, then that end
    assert metrics.document_starts(ends)[0].tolist() == starts
    on_start = torch.zeros(1, 3, 9, 9)  # [batch, head, q, k]
    on_start[0, 0, range(9), starts] = 1.0  # head 0 rests on the current document's start
    on_start[0, 1, :, 0] = 1.0  # head 1 rests on BOS whatever the document
    on_start[0, 2] = torch.eye(9)  # head 2 attends to itself
    weight, uniform = metrics.document_start_attention(on_start, ends)
    assert weight[0].item() == 1.0  # every query after position 0
    assert weight[1].item() == pytest.approx(3 / 8)  # queries 1-3 read the first document
    assert weight[2].item() == pytest.approx(0.0)  # no query after position 0 is a document's start
    assert uniform == pytest.approx(sum(1 / t for t in range(2, 10)) / 8)


def test_move_attention_moves_one_weight_and_keeps_every_row_a_distribution():
    pattern = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.2, 0.3, 0.5]])  # [q, k], causal
    patterns = torch.stack([pattern, pattern])[None]  # [batch 1, head 2, q, k]
    source = torch.tensor([[0, 1, 2]])  # [batch, q]: each query's own position
    target = torch.tensor([[0, 0, 1]])  # ... moved to BOS (query 1) and to key 1 (query 2)
    moved = metrics.move_attention(patterns, [1], source, target)
    expected = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.2, 0.8, 0.0]])
    assert torch.allclose(moved[0, 1], expected)
    assert torch.equal(moved[0, 0], pattern) and torch.equal(patterns[0, 1], pattern)  # other heads; no in-place edit
    assert torch.allclose(moved.sum(-1), torch.ones(1, 2, 3))
    assert torch.allclose(metrics.move_attention(patterns, [0, 1], source, source), patterns)


def test_moved_attention_losses_change_only_when_weight_moves(random_lm):
    tokens = torch.randint(3, 40, (2, 10), generator=torch.Generator().manual_seed(2))
    self_key = torch.arange(10).expand(2, 10)  # [batch, q]: each query's own position
    base = metrics.context_losses(random_lm, tokens)  # [batch]
    heads = [(1, h) for h in range(random_lm.cfg.n_heads)]
    assert torch.allclose(metrics.moved_attention_losses(random_lm, tokens, heads, self_key, self_key), base, atol=1e-6)
    assert torch.equal(metrics.moved_attention_losses(random_lm, tokens, [], self_key, torch.zeros_like(self_key)), base)
    moved = metrics.moved_attention_losses(random_lm, tokens, heads, self_key, torch.zeros_like(self_key))
    assert (moved - base).abs().min() > 1e-3  # the hook reaches the forward pass
    assert torch.equal(metrics.context_losses(random_lm, tokens), base)  # and is gone afterwards


def test_context_losses_average_to_the_mean_loss_and_move_with_the_attention(random_lm):
    tokens = torch.randint(3, 40, (3, 10), generator=torch.Generator().manual_seed(3))
    self_key, bos = torch.arange(10).expand(3, 10), torch.zeros(3, 10, dtype=torch.long)  # [batch, q] each
    heads = [(1, h) for h in range(random_lm.cfg.n_heads)]
    per_context = metrics.context_losses(random_lm, tokens)  # [batch]
    assert per_context.shape == (3,) and per_context.mean().item() == pytest.approx(metrics.mean_loss(random_lm, tokens))
    single = torch.stack([metrics.context_losses(random_lm, row[None])[0] for row in tokens])  # one context at a time
    assert torch.allclose(per_context, single, atol=1e-6)
    moved = metrics.moved_attention_losses(random_lm, tokens, heads, self_key, bos)  # [batch]
    assert (moved - per_context).abs().min() > 1e-4  # every context feels the move


def test_sink_scores_at_another_key_are_alpha_k(random_lm):
    tokens = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(1))
    patterns = metrics.attention_patterns(random_lm, tokens)  # [layer, batch, head, q, k]
    expected = patterns[:, :, :, 4:, 4].mean(dim=(1, 3))  # queries t >= 4, then the batch
    assert torch.allclose(metrics.bos_sink_scores(random_lm, tokens, key=4), expected)
    assert metrics.uniform_key_attention(10, 4) == pytest.approx(sum(1 / t for t in range(5, 11)) / 6)


# ---------------------------------------------------------------- causal tracing identities

@pytest.fixture(scope="module")
def random_lm():
    return build_native(dict(d_model=32, d_head=8, n_heads=4, n_layers=3, n_ctx=16, d_vocab=40, d_mlp=64,
                             act_fn="gelu", normalization_type="LN", seed=3))


TOKENS = torch.tensor([0, 5, 9, 12, 7, 3, 22, 8, 31, 2])  # [pos]
SPAN = (3, 6)  # subject tokens 3, 4, 5
ANSWER = 17


def test_zero_noise_scores_the_clean_run(random_lm):
    result = tracing.trace(random_lm, TOKENS, SPAN, ANSWER, noise_std=0.0, samples=3)
    clean = random_lm(TOKENS[None])[0, -1].softmax(-1)[ANSWER].item()
    assert result.high == pytest.approx(clean, abs=1e-5)
    assert result.low == pytest.approx(result.high, abs=1e-6)
    assert torch.allclose(result.scores, torch.full_like(result.scores, result.high), atol=1e-6)


def test_restoration_identities(random_lm):
    result = tracing.trace(random_lm, TOKENS, SPAN, ANSWER, noise_std=1.0, samples=4)
    assert result.scores.shape == (len(TOKENS), 3)
    assert abs(result.high - result.low) > 1e-4  # the noise does something
    assert result.scores[-1, -1].item() == pytest.approx(result.high, abs=1e-6)  # last token, last layer
    before = result.scores[: SPAN[0]]  # positions the subject cannot reach (causal mask)
    assert torch.allclose(before, torch.full_like(before, result.low), atol=1e-6)


def test_sites_share_one_noise_draw(random_lm):
    sites = [(0, 0), (SPAN[0], 1), (len(TOKENS) - 1, 2)]
    together, low, high = tracing.trace_sites(random_lm, TOKENS, SPAN, ANSWER, sites, noise_std=1.0, samples=4)
    for i, site in enumerate(sites):
        alone, low_alone, _ = tracing.trace_sites(random_lm, TOKENS, SPAN, ANSWER, [site], 1.0, samples=4)
        assert alone.item() == pytest.approx(together[i].item(), abs=1e-6)
        assert low_alone == pytest.approx(low, abs=1e-6)


def test_component_restoration_identities(random_lm):
    """The last token is outside the subject, so it reads the noise only through attention: restoring
    every layer's attention output there restores the clean run exactly, every MLP output does not."""
    n_layers, last = random_lm.cfg.n_layers, len(TOKENS) - 1
    every_attn = ("attn", last, 1)  # window 3 centred on layer 1: layers 0-2, all of them
    every_mlp = ("mlp", last, tuple(range(n_layers)))
    scores, low, high = tracing.trace_sites(random_lm, TOKENS, SPAN, ANSWER, [every_attn, every_mlp],
                                                 noise_std=1.0, samples=4, window=3)
    assert abs(high - low) > 1e-4
    assert scores[0].item() == pytest.approx(high, abs=1e-6)
    assert abs(scores[1].item() - high) > 1e-4


def test_window_layers_are_centred_and_clipped():
    assert list(tracing.window_layers(2, 3, 6)) == [1, 2, 3]
    assert list(tracing.window_layers(0, 3, 6)) == [0, 1]
    assert list(tracing.window_layers(5, 3, 6)) == [4, 5]
    assert list(tracing.window_layers(3, 1, 6)) == [3]


def test_window_site_equals_its_layers_as_a_tuple(random_lm):
    windowed, *_ = tracing.trace_sites(random_lm, TOKENS, SPAN, ANSWER, [("mlp", 5, 1)], 1.0, 4, window=3)
    explicit, *_ = tracing.trace_sites(random_lm, TOKENS, SPAN, ANSWER, [("mlp", 5, (0, 1, 2))], 1.0, 4)
    assert windowed.item() == pytest.approx(explicit.item(), abs=1e-7)


def test_token_classes_follow_rome():
    assert tracing.token_classes((3, 6), 10) == {
        "first subject": [3], "middle subject": [4], "last subject": [5], "first subsequent": [6],
        "further": [7, 8], "last": [9]}
    one_token = tracing.token_classes((1, 2), 4)
    assert "first subject" not in one_token and one_token["last subject"] == [1]


def test_estimate_is_a_student_t_interval():
    rows = [torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]), torch.tensor([4.0, 0.0])]
    e = tracing.estimate(rows)
    mean, sd = 7 / 3, math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom), from a table
    assert e.at(0) == pytest.approx((mean, mean - half, mean + half), rel=1e-5)
    assert e.at(1) == (0.0, 0.0, 0.0)


def test_every_fact_gets_its_own_noise(random_lm, monkeypatch):
    """ROME's code re-seeds for every call, so facts share one draw; summarize must not."""
    lows = []
    real = tracing.fact_fractions

    def spy(*args, **kwargs):
        table, split, low, high = real(*args, **kwargs)
        lows.append(low)
        return table, split, low, high

    monkeypatch.setattr(tracing, "fact_fractions", spy)
    monkeypatch.setattr(tracing, "recalled", lambda model, prompts: torch.ones(len(prompts), dtype=torch.bool))
    monkeypatch.setattr(tracing, "word_token", lambda model, word: ANSWER)
    monkeypatch.setattr(tracing, "subject_embedding_std", lambda model, subjects: 1.0)
    monkeypatch.setattr(random_lm, "to_tokens", lambda text: TOKENS[None], raising=False)
    same = SimpleNamespace(text="x", subject="s", subject_span=SPAN, answer="a")
    summary = tracing.summarize(random_lm, [same, same, same], n_facts=3, samples=2, kinds=("resid",))
    assert summary.n_facts == 3 and len(set(lows)) == 3, lows
    assert summary.low_range == (min(lows), max(lows))


def test_subject_embedding_std_pools_every_coordinate(biased_lm):
    model = copy.deepcopy(biased_lm)
    vocab, d = corpus.token_ids(), model.cfg.d_model
    state = model.state_dict()
    for value, word in enumerate(["mary", "john", "tom"], start=1):
        state["embed.weight"][vocab[word]] = float(value)
    model.load_state_dict(state)
    # values 1, 2, 3, each d times: mean 2, unbiased variance (d + 0 + d) / (3d - 1)
    expected = math.sqrt(2 * d / (3 * d - 1))
    assert tracing.subject_embedding_std(model, ["mary john", "tom"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_notebook_solutions_agree_with_the_library_scores(seed):
    """Notebooks 01 and 03 teach these scores as exercises; their solutions must match the library."""
    from utils.reference import nb01, nb03

    generator = torch.Generator().manual_seed(seed)
    half = 3 + seed
    scores = torch.randn(2, 3, 1 + 2 * half, 1 + 2 * half, generator=generator)
    future = torch.ones(1 + 2 * half, 1 + 2 * half, dtype=torch.bool).triu(diagonal=1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(-1)  # [batch, head, q, k]
    torch.testing.assert_close(nb03.induction_score(pattern, half), metrics.induction_score(pattern, half))
    torch.testing.assert_close(nb03.previous_token_score(pattern), metrics.previous_token_score(pattern))
    for k, eps in [(0, 0.2), (1, 0.1), (2, 0.05)]:
        assert nb01.sink_rate(pattern[None], k, eps) == metrics.sink_rate(pattern[None], k, eps)


# ---------------------------------------------------------------- pointer readout and residual patching

POINTER8 = pointer.PointerTask(8, 3)


def test_pointer_readout_scores_on_synthetic_patterns():
    # 2 layers, 2 heads, 8 examples (address i for example i), keys T = 11
    n, T = 8, POINTER8.context
    address = torch.arange(n)
    readout = torch.full((2, n, 2, T), 1 / T)  # [layer, n, head, key] uniform
    readout[1, :, 0] = 0.0
    readout[1, address, 0, address] = 0.6  # layer 1 head 0: 0.6 on the addressed cell ...
    readout[1, address, 0, POINTER8.memory_bits] = 0.4  # ... and 0.4 on an address bit
    readout[1, 7, 0, 7], readout[1, 7, 0, 0] = 0.3, 0.3  # except for address 7
    per_example = metrics.addressed_cell_attention(readout, address)  # [n, layer, head]
    assert per_example.shape == (n, 2, 2)
    assert torch.allclose(per_example[:, 0], torch.full((n, 2), 1 / T))
    assert per_example[:7, 1, 0].eq(0.6).all() and per_example[7, 1, 0] == pytest.approx(0.3)
    by_address = metrics.attention_by_address(per_example.repeat(3, 1, 1), address.repeat(3), 8)
    assert torch.allclose(by_address, per_example)  # three copies of each example: the same means
    spikes = metrics.clean_spikes(by_address, 0.5)
    assert spikes.tolist() == [True] * 7 + [False]
    missing = metrics.attention_by_address(per_example[:7], address[:7], 8)
    assert missing[7].isnan().all() and not metrics.clean_spikes(missing)[7]


@pytest.fixture(scope="module")
def random_pointer():
    return build_native(dict(d_model=16, d_head=8, n_heads=2, n_layers=2, n_ctx=POINTER8.context, d_vocab=2,
                             d_mlp=32, act_fn="gelu", normalization_type="LN", init_mode="xavier_uniform", seed=5))


def test_pointer_readout_of_a_model_has_the_right_shapes(random_pointer):
    r = metrics.pointer_readout(random_pointer, POINTER8, n=400)
    assert r.per_head.shape == (2, 2) and r.by_address.shape == (8, 2, 2) and r.spikes.shape == (8,)
    assert r.uniform == pytest.approx(1 / 11)
    assert 0 <= r.spike_count <= 8 and r.legible(7) == (r.best >= 0.5 and r.spike_count >= 7)


def test_pointer_position_masks_partition_the_input():
    inputs, _ = pointer.inputs_and_targets(pointer.sample(POINTER8, 50, torch.Generator().manual_seed(0)))
    masks = metrics.pointer_position_masks(inputs, POINTER8)
    total = sum(masks[c].long() for c in metrics.POSITION_CLASSES)  # [n, T]
    assert total.eq(1).all()  # the four classes partition every sequence
    address = pointer.decode_address(inputs, POINTER8)
    assert masks[metrics.EARLIER_MEMORY].sum(1).tolist() == address.tolist()


def test_patching_recovery_identities(random_pointer):
    result = metrics.pointer_patching_recovery(random_pointer, POINTER8, n=100, min_denominator=1e-4)
    assert result.recovery.shape == (3, 5) and result.pairs > 10
    assert result.at(0, "addressed cell") == pytest.approx(1.0, abs=1e-4)  # the only difference at the embedding
    for cls in ("other memory", "address bits", "readout"):
        assert result.at(0, cls) == 0.0  # identical embeddings
    assert result.at(-1, "readout") == pytest.approx(1.0, abs=1e-4)  # the logits read only the last residual
    for cls in ("addressed cell", "other memory", "address bits"):
        assert result.at(-1, cls) == 0.0
    assert result.recovery[:, result.classes.index(metrics.EARLIER_MEMORY)].eq(0).all()  # causal mask


def test_patch_sites_batched_equals_one_prompt_at_a_time_and_its_identities(random_lm):
    """tracing.patch_sites on a batch of prompt pairs equals each pair alone; no site leaves the target's
    run, and the last position after the last block is the source's own output."""
    source = torch.stack([TOKENS, TOKENS.roll(1), TOKENS.flip(0)])  # [3, pos]
    target = torch.stack([TOKENS.roll(2), TOKENS, TOKENS.roll(3)])
    last, n_layers = len(TOKENS) - 1, random_lm.cfg.n_layers
    sites = [(f"blocks.{layer}.hook_resid_post", pos) for pos in (SPAN[1] - 1, last) for layer in range(n_layers)]
    together = tracing.patch_sites(random_lm, source, target, sites)  # [3, sites, vocab]
    for b in range(len(source)):
        alone = tracing.patch_sites(random_lm, source[b], target[b], sites)  # [sites, vocab]
        assert torch.allclose(together[b], alone, atol=1e-5)
    with torch.no_grad():
        source_out, target_out = random_lm(source)[:, -1], random_lm(target)[:, -1]  # [3, vocab]
    assert torch.allclose(together[:, -1], source_out, atol=1e-5)  # last token after the last block
    assert not torch.allclose(together[:, 0], target_out, atol=1e-3)  # the subject's state matters to the output
    into_itself = tracing.patch_sites(random_lm, target, target, sites)  # [3, sites, vocab]
    assert torch.allclose(into_itself, target_out[:, None].expand_as(into_itself), atol=1e-5)


def test_token_class_attention_against_hand_counts_and_the_uniform_baseline():
    """Attention on a class of keys, over the queries that can see one; a uniform head gets the class's share."""
    n = 6
    uniform = torch.ones(n, n).tril() / torch.arange(1, n + 1)[:, None]  # [q, k]
    on_first = torch.zeros(n, n)
    on_first[:, 2] = 1.0
    on_first[:2, 0] = 1.0  # queries 0-1 cannot see key 2
    pattern = torch.stack([uniform, on_first])[None]  # [1, head, q, k]
    is_key = torch.tensor([[False, False, True, False, True, False]])  # keys 2 and 4
    per_head, baseline = metrics.token_class_attention(pattern, is_key)
    shares = [1 / 3, 1 / 4, 2 / 5, 2 / 6]  # queries 2..5: keys of the class among the keys each can see
    assert baseline == pytest.approx(sum(shares) / 4)
    assert per_head[0].item() == pytest.approx(baseline)  # a uniform head scores the baseline exactly
    assert per_head[1].item() == pytest.approx(1.0)  # all of head 1's weight is on key 2 from query 2 on


def test_written_norms_are_what_a_key_adds_to_the_attention_output(random_lm):
    # Independent route: force one head to put all its weight on key k (or none anywhere); the attention output
    # changes by exactly what key k writes through that head, v_k W_O.
    tokens = torch.randint(3, 40, (2, 8), generator=torch.Generator().manual_seed(3))
    layer, head, key = 1, 1, 2
    norms = metrics.written_norms(random_lm, tokens, [(layer, head), (0, 0)])  # {(layer, head): [batch, key]}
    assert set(norms) == {(layer, head), (0, 0)} and norms[(layer, head)].shape == (2, 8)

    def attention_out(weight: float) -> torch.Tensor:
        def force(pattern, hook):  # [batch, head, q, k]
            pattern = pattern.clone()
            pattern[:, head] = 0.0
            pattern[:, head, key:, key] = weight  # queries that can see the key
            return pattern
        with random_lm.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", force)]):
            _, cache = random_lm.run_with_cache(tokens, names_filter=f"blocks.{layer}.hook_attn_out")
        return cache[f"blocks.{layer}.hook_attn_out"]  # [batch, pos, d_model]

    added = (attention_out(1.0) - attention_out(0.0))[:, key:].norm(dim=-1)  # [batch, query]: the same at every query
    assert torch.allclose(added, norms[(layer, head)][:, key, None].expand_as(added), rtol=1e-4, atol=1e-5)
