"""Load the course's models, offline, as TransformerBridges ready for analysis.

Every notebook loads models through `load_model`, so switching the whole course to GPT-2 small is
one argument: `load_model("gpt2")` (needs the internet once, then the Hugging Face cache).

Two on-disk formats live under models/<name>/:
- HF format (course-lm): a GPT2LMHeadModel folder with its tokenizer, booted exactly as "gpt2" is,
  through `TransformerBridge.boot_transformers`.
- native format (attn-only-2l, pointer-8, pointer-32): `native_config.json` (TransformerBridgeConfig
  fields), `model.safetensors` (the bridge's state_dict), an optional tokenizer, and optional
  training snapshots in checkpoints/step_NNNNNN.safetensors.

Compatibility mode (HookedTransformer numerics: LayerNorm folded into the next weights, writing
weights centred) is OFF by default: hooks then see exactly what the underlying model computes, and
attention patterns, losses and patching results are identical either way. Pass `compat=True` for
logit lens and direct logit attribution, where folded LayerNorm is what makes per-component
contributions add up. It cannot be undone on a loaded model; load again to get the raw weights.
"""

from __future__ import annotations

import difflib
import json
import os
import socket
from pathlib import Path

import torch

from utils.env import configure_torch

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(os.environ.get("COURSE_MODELS_DIR", REPO_ROOT / "models"))  # override: tests, dev
NATIVE_CONFIG = "native_config.json"
WEIGHTS = "model.safetensors"
HUB_HOST = ("huggingface.co", 443)
TYPO_CUTOFF = 0.75  # difflib ratio above which a name is taken for a misspelt course model


class ModelUnavailableError(RuntimeError):
    """A model cannot be loaded here (unknown name, missing files, or a hub model while offline)."""


def course_models() -> list[str]:
    """Names of the models that ship with the course (folders under models/)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").exists() or (p / NATIVE_CONFIG).exists())


def list_checkpoints(name: str) -> list[int]:
    """Training steps at which a course model saved a snapshot (empty if it has none)."""
    return folder_checkpoints(_course_folder(name))


def load_model(name: str = "course-lm", *, checkpoint: int | None = None, compat: bool = False, device: str = "cpu"):
    """Load a course model by name from models/, or a Hugging Face model such as "gpt2" when online.

    Returns a TransformerBridge in eval mode. `checkpoint` picks a training snapshot (see
    `list_checkpoints`); `compat=True` turns on compatibility mode (see the module docstring).
    A name close to a course model's ("course_lm", "Course LM") is a typo, reported at once, not looked
    up on the hub; a name with an owner ("someone/course-lm") always goes to the hub. A model whose
    tokenizer has an unknown token prints one line when a prompt has words it does not know
    (utils.tokenizer.watch_prompts).
    """
    if not isinstance(name, str):
        raise TypeError(f"load_model expects a model name as a string, e.g. 'course-lm' or 'gpt2'; got {type(name).__name__}")
    _refuse_typos(name)  # before anything slow: a typo is reported at once
    _quiet_transformers()
    configure_torch()
    if (MODELS_DIR / name).is_dir():  # a course model (or a broken one: _course_folder says so)
        model = _load_course_model(name, checkpoint, device)
    elif checkpoint is not None:
        raise ValueError(f"checkpoint= is only available for course models with snapshots; {name!r} is not one")
    else:
        model = _load_hub_model(name, device)
    if compat:
        model.enable_compatibility_mode()
    from utils.tokenizer import watch_prompts

    return watch_prompts(model.eval())


def load_folder(folder: str | Path, *, checkpoint: int | None = None, device: str = "cpu"):
    """Load the weights a recipe saved into any folder (another seed's run, say), in eval mode: native or Hugging
    Face format, as `load_model` loads models/<name>/. For the model card and the zoo's tools; notebooks use
    `load_model`."""
    folder = Path(folder)
    if (folder / NATIVE_CONFIG).exists():
        return _load_native(folder, checkpoint, device).eval()
    return _boot_hf_folder(folder, device).eval()


def folder_checkpoints(folder: str | Path) -> list[int]:
    """Training steps at which the run in `folder` saved a snapshot (empty if none)."""
    return sorted(int(p.stem.removeprefix("step_")) for p in (Path(folder) / "checkpoints").glob("step_*.safetensors"))


def save_native(model, config: dict, folder: Path, tokenizer=None) -> None:
    """Save a native (boot_native) model in the course's format; `config` holds TransformerBridgeConfig fields."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NATIVE_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(_contiguous_state(model), str(folder / WEIGHTS))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))


def save_checkpoint(model, folder: Path, step: int, dtype: torch.dtype = torch.float16) -> Path:
    """Save a training snapshot of a native model (half precision by default, to keep the repo small)."""
    from safetensors.torch import save_file

    path = Path(folder) / "checkpoints" / f"step_{step:06d}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(dtype) for k, v in _contiguous_state(model).items()}, str(path))
    return path


def build_native(config: dict, tokenizer=None):
    """A freshly initialised native TransformerBridge (eval mode) from TransformerBridgeConfig fields."""
    from transformer_lens import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_native(TransformerBridgeConfig(**config), tokenizer=tokenizer).eval()


def close_course_models(name: str) -> list[str]:
    """Course models that `name` looks like a typo of: another case, "_" or " " for "-", a few letters off.

    Empty for an exact course model name and for hub names with an owner ("openai-community/gpt2").
    """
    known = course_models()
    if name in known or "/" in name:
        return []
    by_canonical = {_canonical(model): model for model in known}
    if _canonical(name) in by_canonical:
        return [by_canonical[_canonical(name)]]
    matches = difflib.get_close_matches(_canonical(name), list(by_canonical), n=3, cutoff=TYPO_CUTOFF)
    return [by_canonical[match] for match in matches]


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _refuse_typos(name: str) -> None:
    close = close_course_models(name)
    if close:
        guesses = " or ".join(repr(model) for model in close)
        raise ModelUnavailableError(
            f"no course model named {name!r}; did you mean {guesses}? The course ships: {', '.join(course_models())}. "
            "(Hugging Face models load by their hub name, e.g. load_model('gpt2').)")


def _course_folder(name: str) -> Path:
    folder = MODELS_DIR / name
    if name not in course_models():
        known = ", ".join(course_models()) or "none found"
        raise ModelUnavailableError(f"no course model named {name!r}; the course ships: {known}")
    return folder


def _load_course_model(name: str, checkpoint: int | None, device: str):
    folder = _course_folder(name)
    if (folder / NATIVE_CONFIG).exists():
        return _load_native(folder, checkpoint, device)
    if checkpoint is not None:
        raise ValueError(f"{name!r} has no training snapshots; checkpoint= works for: "
                         + ", ".join(n for n in course_models() if list_checkpoints(n)))
    return _boot_hf_folder(folder, device)


def _boot_hf_folder(folder: Path, device: str):
    """A course model saved in Hugging Face format, booted offline. Every course prompt starts with BOS: the bridge
    prepends it for GPT-2 folders but not for GPT-NeoX ones (facts-lm), so it is set here for all."""
    from transformer_lens.model_bridge import TransformerBridge

    model = TransformerBridge.boot_transformers(str(folder), device=device)
    model.cfg.default_prepend_bos = True
    return model


def _load_native(folder: Path, checkpoint: int | None, device: str):
    from safetensors.torch import load_file

    config = json.loads((folder / NATIVE_CONFIG).read_text())
    tokenizer = None
    if (folder / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = build_native(config, tokenizer)
    if checkpoint is None:
        weights = folder / WEIGHTS
    else:
        weights = folder / "checkpoints" / f"step_{checkpoint:06d}.safetensors"
        if not weights.exists():
            raise ModelUnavailableError(f"{folder.name} has no checkpoint at step {checkpoint}; "
                                        f"available steps: {list_checkpoints(folder.name)}")
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    model.load_state_dict(state, strict=True)
    return model if device == "cpu" else model.to(device)


def _load_hub_model(name: str, device: str):
    from transformer_lens.model_bridge import TransformerBridge

    import huggingface_hub

    offline = huggingface_hub.constants.HF_HUB_OFFLINE or not _hub_reachable()
    cached = isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json"), str)
    try:
        if offline and not cached:
            raise OSError("not cached")
        if offline:
            huggingface_hub.constants.HF_HUB_OFFLINE = True  # use the cache; never wait on retries
        return TransformerBridge.boot_transformers(name, device=device)
    except (OSError, ValueError) as err:
        where = "you are offline and it is not in the Hugging Face cache" if offline else f"loading failed: {err}"
        raise ModelUnavailableError(
            f"cannot load {name!r}: {where}. Course models work offline: load_model('course-lm') "
            f"(available: {', '.join(course_models())}). To use {name!r}, connect to the internet once."
        ) from None


def _hub_reachable(timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _contiguous_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
