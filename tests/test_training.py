"""One training loop, one config shape and one schedule for every recipe in the model zoo."""

from dataclasses import fields, replace
from importlib.metadata import version

import pytest

from utils.zoo import model_card, train, train_lm, train_pointer, training


def test_every_model_has_a_recipe_with_the_one_config_shape():
    assert set(train.RECIPES) == {"course-lm", "ioi-lm", "facts-lm", "attn-only-2l", "backcopy-lm", "pointer-8", "pointer-32"}
    assert set(train.RECIPES) == set(model_card.ORDER)
    for name, recipe in train.RECIPES.items():
        assert recipe.name == name and type(recipe.config) is training.TrainConfig
        smoke = recipe.smoke_config()
        assert smoke.steps < recipe.config.steps and all(c < smoke.steps for c in smoke.checkpoints)
    assert {f.name for f in fields(training.TrainConfig)} >= {
        "n_layers", "d_model", "n_heads", "n_ctx", "d_mlp", "steps", "batch", "lr", "warmup", "final_lr", "betas",
        "weight_decay", "grad_clip", "seed", "eval_every"}


@pytest.mark.parametrize("name, final", [("course-lm", 0.1), ("pointer-8", 0.0)])
def test_one_schedule_warms_up_then_decays_to_its_floor(name, final):
    cfg = train.RECIPES[name].config
    rates = [training.lr_at(step, cfg) for step in range(cfg.steps + 1)]
    assert rates[0] == cfg.lr / cfg.warmup and rates[cfg.warmup - 1] == pytest.approx(cfg.lr)
    assert rates[cfg.warmup] == cfg.lr
    assert all(a >= b for a, b in zip(rates[cfg.warmup:], rates[cfg.warmup + 1:]))
    assert rates[-1] == pytest.approx(final * cfg.lr, abs=1e-12)


def test_both_recipe_families_train_through_the_same_loop(tmp_path, monkeypatch):
    seen, loop = [], training.train

    def spy(model, cfg, batches, loss_fn, **kwargs):
        seen.append(cfg)
        return loop(model, cfg, batches, loss_fn, **kwargs)

    monkeypatch.setattr(training, "train", spy)
    names = ["course-lm", "attn-only-2l", "pointer-8"]  # pointer-32 differs from pointer-8 only in its config
    for name in names:
        cfg = replace(train.RECIPES[name].smoke_config(), steps=2, warmup=1, eval_every=1)
        record = training.run(train.RECIPES[name], cfg, tmp_path / name)
        assert record["model"] == name and record["steps"] == 2 and [e["step"] for e in record["curve"]] == [1, 2]
        assert record["cpu_model"] and record["transformers"] == version("transformers")  # what a rerun must match
        assert seen[-1] is cfg
    assert len(seen) == len(names)
    assert "accuracy" in record["curve"][-1] and "final_accuracy" in record  # the pointer recipe's measurements
    monkeypatch.setattr(model_card, "MODELS_DIR", tmp_path)
    for name in names:  # the model card reads every recipe's training.json
        assert None not in model_card.training_record(name).values()
    p8, p32 = train.RECIPES["pointer-8"], train.RECIPES["pointer-32"]
    assert replace(p8, name=p32.name, config=p32.config) == p32


def test_old_entry_points_are_the_shared_command_line():
    assert train_lm.RECIPES.keys() | train_pointer.RECIPES.keys() == train.RECIPES.keys()
    assert train_lm.main is train_pointer.main is train.main is training.main


def test_phase_change_step_is_the_first_snapshot_at_the_bar():
    curve = {"1250": 0.6, "250": 0.03, "1200": 0.4, "3000": 0.93}  # as seeds.json stores it: string keys, any order
    assert model_card.phase_change_step(curve) == 1250
    assert model_card.phase_change_step(curve, bar=0.95) is None
    assert model_card.phase_change_step({0: 0.5}) == 0  # the bar itself counts


def test_the_card_for_named_models_rewrites_only_their_rows_and_sections(monkeypatch):
    """`python -m utils.zoo.model_card NAME` once rewrote the whole card with NAME alone on it; the zoo timing
    (no measurement, a file) is read again."""
    import pytest
    card = "\n".join(["# Course models", "", "| model | loss |", "|---|---|", "| `a` | 1.0 |", "| `b` | 2.0 |", "",
                      "The whole zoo, trained end to end in 9 minutes.", "",
                      "## `a`", "", "old a", "", "## `b`", "", "old b", "", "## `jw-classifiers` (notebook 02)", "",
                      "classifiers", ""])
    monkeypatch.setattr(model_card, "zoo_timing_lines", lambda: ["The whole zoo, trained end to end in 8 minutes.", ""])
    monkeypatch.setattr(model_card, "overview", lambda cards: ["| model | loss |", "|---|---|"]
                        + [f"| `{n}` | {c['loss']} |" for n, c in cards.items()])
    monkeypatch.setattr(model_card, "section", lambda name, c: [f"## `{name}`", "", f"new {name} {c['loss']}", ""])
    spliced = model_card.splice(card, {"b": {"loss": 3.0}})
    assert spliced == card.replace("| `b` | 2.0 |", "| `b` | 3.0 |").replace("old b", "new b 3.0").replace("9 minutes", "8 minutes")
    assert model_card.splice(card, {"a": {"loss": 9}}).count("## `") == 3
    with pytest.raises(ValueError, match="without names"):
        model_card.splice(card, {"c": {"loss": 1.0}})
