"""The model loader: course models offline, a fast clear failure for hub models offline, bad input."""

import pytest
import torch

from utils import models

TINY = dict(d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=16, d_vocab=11, attn_only=True,
            act_fn="gelu", normalization_type="LN", seed=3)


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    return tmp_path


def test_native_model_round_trips_with_checkpoints(models_dir):
    trained = models.build_native(TINY)
    models.save_native(trained, TINY, models_dir / "tiny")
    models.save_checkpoint(trained, models_dir / "tiny", step=20)
    models.save_checkpoint(trained, models_dir / "tiny", step=5)

    loaded = models.load_model("tiny")
    tokens = torch.randint(0, TINY["d_vocab"], (2, 9))
    assert not loaded.training
    assert torch.equal(loaded(tokens), trained(tokens))
    assert models.course_models() == ["tiny"]
    assert models.list_checkpoints("tiny") == [5, 20]
    snapshot = models.load_model("tiny", checkpoint=20)  # stored in float16
    assert (snapshot(tokens) - trained(tokens)).abs().max() < 0.05


def test_load_folder_loads_a_run_outside_the_models_folder(tmp_path):
    trained = models.build_native(TINY)
    models.save_native(trained, TINY, tmp_path / "seed-3")
    models.save_checkpoint(trained, tmp_path / "seed-3", step=40)
    models.save_checkpoint(trained, tmp_path / "seed-3", step=8)
    tokens = torch.randint(0, TINY["d_vocab"], (2, 9))
    loaded = models.load_folder(tmp_path / "seed-3")
    assert not loaded.training and torch.equal(loaded(tokens), trained(tokens))
    assert models.folder_checkpoints(tmp_path / "seed-3") == [8, 40]
    assert (models.load_folder(tmp_path / "seed-3", checkpoint=8)(tokens) - trained(tokens)).abs().max() < 0.05


def test_missing_checkpoint_lists_the_available_steps(models_dir):
    models.save_native(models.build_native(TINY), TINY, models_dir / "tiny")
    models.save_checkpoint(models.build_native(TINY), models_dir / "tiny", step=5)
    with pytest.raises(models.ModelUnavailableError, match=r"no checkpoint at step 7; available steps: \[5\]"):
        models.load_model("tiny", checkpoint=7)


def test_unknown_course_model_is_a_clear_error(models_dir):
    models.save_native(models.build_native(TINY), TINY, models_dir / "tiny")
    (models_dir / "half-written").mkdir()  # a folder without a config is not a model
    with pytest.raises(models.ModelUnavailableError, match="no course model named 'half-written'; the course ships: tiny"):
        models.load_model("half-written")


@pytest.mark.parametrize("typo, meant", [("course_lm", "'course-lm'"), ("Course LM", "'course-lm'"),
                                         ("courselm", "'course-lm'"), ("cours-lm", "'course-lm'"),
                                         ("ATTN_ONLY_2L", "'attn-only-2l'"), ("attn-only", "'attn-only-2l'"),
                                         ("pointer8", "'pointer-8' or 'pointer-32'")])
def test_a_typo_is_not_an_outage(typo, meant, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("a typo must not reach the hub")

    monkeypatch.setattr(models, "_load_hub_model", no_hub)
    monkeypatch.setattr(models, "_hub_reachable", no_hub)
    with pytest.raises(models.ModelUnavailableError) as error:
        models.load_model(typo)
    assert str(error.value) == (f"no course model named {typo!r}; did you mean {meant}? The course ships: "
                                "attn-only-2l, backcopy-lm, course-lm, facts-lm, ioi-lm, pointer-32, pointer-8. (Hugging Face models load by their "
                                "hub name, e.g. load_model('gpt2').)")
    assert "offline" not in str(error.value)


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "gpt2-xl", "distilgpt2", "gpt-2", "bert-base-uncased",
                                  "openai-community/gpt2", "someone/course-lm", "course-lm", "pointer-32"])
def test_hub_names_and_course_names_are_not_typos(name):
    assert models.close_course_models(name) == []


def test_hub_model_offline_fails_at_once_with_what_to_do(monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    def no_download(*args, **kwargs):
        raise AssertionError("offline and not cached: loading must fail before asking the hub")

    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=1.0: False)
    monkeypatch.setattr(TransformerBridge, "boot_transformers", no_download)
    with pytest.raises(models.ModelUnavailableError) as error:
        models.load_model("surely-not-cached/model-xyz")
    assert "you are offline and it is not in the Hugging Face cache" in str(error.value)
    assert "load_model('course-lm')" in str(error.value)


def test_gpt2_still_goes_to_the_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=1.0: False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: None)  # as if not cached
    with pytest.raises(models.ModelUnavailableError, match="cannot load 'gpt2': you are offline"):
        models.load_model("gpt2")


def test_checkpoint_for_a_hub_model_is_refused():
    with pytest.raises(ValueError, match="only available for course models"):
        models.load_model("gpt2", checkpoint=3)


@pytest.mark.parametrize("bad", [None, 3, ["course-lm"]])
def test_model_name_must_be_a_string(bad):
    with pytest.raises(TypeError, match="expects a model name as a string"):
        models.load_model(bad)
