"""Smoke runs of the training recipes on tiny configs, so the scripts cannot rot (CI never trains fully)."""

from dataclasses import replace

import torch

from utils import corpus
from utils.models import _load_native, list_checkpoints
from utils.zoo import train_lm, training


def _tiny(recipe: training.Recipe, **extra) -> training.TrainConfig:
    return replace(recipe.smoke_config(), **extra)


def test_batches_are_deterministic_padded_and_start_with_bos():
    cfg = _tiny(train_lm.COURSE_LM, batch=4)
    a, b = next(train_lm.batches(cfg)), next(train_lm.batches(cfg))
    assert a.shape == (4, cfg.n_ctx) and torch.equal(a, b)
    assert (a[:, 0] == corpus.token_ids()[corpus.BOS]).all()


def test_loss_ignores_padding():
    pad = corpus.token_ids()[corpus.PAD]
    tokens = torch.tensor([[0, 5, 6, pad, pad]])  # [batch, pos]
    logits = torch.zeros(1, 5, len(corpus.token_ids()))
    logits[0, 3:, 0] = 1e4  # predictions at padded targets would be terrible if counted
    assert torch.isclose(train_lm.lm_loss(logits, tokens), torch.log(torch.tensor(float(logits.shape[-1]))))


def test_lr_schedule():
    cfg = train_lm.COURSE_LM.config
    assert training.lr_at(0, cfg) < training.lr_at(cfg.warmup, cfg) == cfg.lr
    assert abs(training.lr_at(cfg.steps, cfg) - 0.1 * cfg.lr) < 1e-9


def test_training_is_reproducible():
    cfg = _tiny(train_lm.COURSE_LM)
    states = []
    for _ in range(2):
        model = train_lm.build_course_lm(cfg)
        training.train(model, cfg, train_lm.batches(cfg), train_lm.COURSE_LM.loss)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_course_lm_recipe_smoke(tmp_path):
    from transformer_lens.model_bridge import TransformerBridge

    record = training.run(train_lm.COURSE_LM, _tiny(train_lm.COURSE_LM), tmp_path)
    assert record["steps"] == train_lm.TINY["steps"] and (tmp_path / "training.json").exists()
    model = TransformerBridge.boot_transformers(str(tmp_path), device="cpu")
    assert model.to_str_tokens("when mary and john")[0] == corpus.BOS
    _, cache = model.run_with_cache(model.to_tokens("when mary and john went"))
    assert cache["pattern", 0].shape == (1, train_lm.TINY["n_heads"], 6, 6)


def test_attn_only_recipe_smoke(tmp_path, monkeypatch):
    import utils.models

    cfg = _tiny(train_lm.ATTN_ONLY_2L, checkpoints=(0, 2))
    training.run(train_lm.ATTN_ONLY_2L, cfg, tmp_path)
    monkeypatch.setattr(utils.models, "MODELS_DIR", tmp_path.parent)
    assert list_checkpoints(tmp_path.name) == [0, 2, cfg.steps]
    first, last = _load_native(tmp_path, 0, "cpu"), _load_native(tmp_path, None, "cpu")
    tokens = corpus.repeated_random_tokens(2, 5)
    assert not torch.allclose(first(tokens), last(tokens))
