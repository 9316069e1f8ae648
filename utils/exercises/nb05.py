"""Checkers for 05_causal_tracing: ROME's noise level, corrupt-and-restore, the window of layers, the average
by token class, and patching activations between two runs."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from utils import corpus, facts
from utils.checking import Case, Exercise, keep_pristine, reference, register
from utils.exercises._inputs import (RANDOM_MODEL, _RANDOM_MODELS, checker_model, ioi_structure_batch, random_tokens,
                                     randn)

FACTS_MODEL = "facts-lm"


def _fact(rng: np.random.Generator):
    """A random fact prompt of a random split (the checker's own seeds, never the notebook's)."""
    split = facts.SPLITS[int(rng.integers(len(facts.SPLITS)))]
    return facts.prompts(1, split, seed=int(rng.integers(10**6)))[0]


def _fact_tokens(model, prompt) -> torch.Tensor:
    return model.to_tokens(prompt.text)[0]  # [pos]


# --- 05.1 subject_noise_std -------------------------------------------------------------------------
def _names(rng: np.random.Generator, n: int) -> list[str]:
    people = facts.people()
    return [people[int(i)].name for i in rng.integers(len(people), size=n)]


def _std_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    model = checker_model(FACTS_MODEL)
    cases = [Case("random", (model, _names(rng, int(rng.integers(2, 40))))) for _ in range(n_random)]
    twice = _names(rng, 3)
    cases.append(Case("edge", (model, twice + twice[:1]), "a subject listed twice (each occurrence counts)"))
    cases.append(Case("edge", (model, _names(rng, 1)), "a single subject"))
    cases.append(Case("edge", (model, _names(rng, 60)), "60 subjects, more tokens than one context holds"))
    course = checker_model("course-lm")
    cases.append(Case("edge", (course, [s.name for s in corpus.subjects()[:: 97]]), "course-lm, subjects of two and "
                      "three tokens"))
    return cases


def _with_ddof(model, subjects, ddof: int) -> float:
    ids = torch.cat([model.to_tokens(s, prepend_bos=False)[0] for s in subjects])
    return model.W_E[ids].std(correction=ddof).item()


def _with_bos(model, subjects):
    ids = torch.cat([model.to_tokens(s)[0] for s in subjects])
    return model.W_E[ids].std().item()


register(Exercise("05.1", _std_cases, atol=1e-6, rtol=1e-5, diagnoses=[
    (_with_bos, "BOS is counted: tokenize each subject with prepend_bos=False"),
    (lambda model, subjects: 3 * reference("05.1")(model, subjects), "the std is multiplied by 3: return the std itself "
     "(the notebook scales it)"),
    (lambda model, subjects: model.W_E.std().item(), "this is the std of the whole embedding matrix: index it with "
     "the subjects' tokens"),
    (lambda model, subjects: _with_ddof(model, subjects, 0), "the population std (divided by N; numpy's np.std "
     "default): take the sample std, divided by N - 1 (torch's .std(), or np.std(..., ddof=1))"),
]))


# --- 05.2 restored_probability ----------------------------------------------------------------------
HOOKS = ("hook_resid_post", "hook_mlp_out", "hook_attn_out")


def _sites(rng: np.random.Generator, model, n_pos: int, n: int, hooks: tuple[str, ...] = HOOKS) -> list[tuple[str, int]]:
    """n random (hook name, position) sites among `hooks` of any block."""
    return [(f"blocks.{int(rng.integers(model.cfg.n_layers))}.{hooks[int(rng.integers(len(hooks)))]}",
             int(rng.integers(n_pos))) for _ in range(n)]


def _restore_case(rng: np.random.Generator, kind: str = "random", probe=None, label: str = "") -> Case:
    model = checker_model(FACTS_MODEL)
    prompt = _fact(rng)
    tokens = _fact_tokens(model, prompt)
    span = tuple(prompt.subject_span)
    noise = randn(rng, int(rng.integers(1, 5)), span[1] - span[0], model.cfg.d_model, scale=float(rng.uniform(0.1, 0.5)))
    answer = int(model.to_tokens(" " + prompt.answer, prepend_bos=False)[0, 0])
    restore = _sites(rng, model, len(tokens), int(rng.integers(0, 3)))
    return Case(kind, (model, tokens, span, answer, noise, restore), label, probe)


def _restore_random_model(rng: np.random.Generator) -> Case:
    model = checker_model(RANDOM_MODEL)
    tokens = random_tokens(model, rng, 1, int(rng.integers(6, 12)))[0]
    start = int(rng.integers(1, 3))
    span = (start, start + int(rng.integers(1, 4)))
    noise = randn(rng, 3, span[1] - span[0], model.cfg.d_model)
    return Case("edge", (model, tokens, span, int(rng.integers(3, model.cfg.d_vocab)), noise,
                         _sites(rng, model, len(tokens), 2)),
                f"a 3-layer model with d_model 48, a subject of {span[1] - span[0]} token(s)")


def _clean_probability(model, tokens: torch.Tensor, answer: int) -> float:
    with torch.no_grad():
        return model(tokens[None])[0, -1].softmax(-1)[answer].item()


def _no_noise_is_clean(call, case: Case) -> str | None:
    model, tokens, span, answer, noise, _ = case.args
    got = call(model, tokens, span, answer, torch.zeros_like(noise), [])
    want = _clean_probability(model, tokens, answer)
    return None if abs(float(got) - want) < 1e-5 else (
        f"with zero noise and nothing restored every row is the clean prompt, so p should be the clean {want:.4f}; "
        f"yours is {float(got):.4f}")


def _before_subject_restores_nothing(call, case: Case) -> str | None:
    model, tokens, span, answer, noise, _ = case.args
    plain = float(call(model, tokens, span, answer, noise, []))
    early = float(call(model, tokens, span, answer, noise, [(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", span[0] - 1)]))
    return None if abs(plain - early) < 1e-5 else (
        f"restoring token {span[0] - 1}, before the subject, cannot change anything (it never sees the noise), yet p "
        f"moved from {plain:.4f} to {early:.4f}: is the noise added to the subject's positions only?")


def _last_token_restores_all(call, case: Case) -> str | None:
    model, tokens, span, answer, noise, _ = case.args
    site = [(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", len(tokens) - 1)]
    got = float(call(model, tokens, span, answer, noise, site))
    want = _clean_probability(model, tokens, answer)
    return None if abs(got - want) < 1e-4 else (
        f"restoring the last token after the last block gives the clean run's output, p = {want:.4f}; yours gives "
        f"{got:.4f}: are the restored values copied from the clean row (row 0)?")


def _one_hook_two_positions(rng: np.random.Generator) -> Case:
    """Both subject tokens restored at one hook: code that keys the sites by hook name keeps only one of them."""
    case = _restore_case(rng, "edge", label="two positions at one hook: the subject's two tokens after block 0")
    model, tokens, span, answer, noise, _ = case.args
    hook = "blocks.0.hook_resid_post"
    case.args = (model, tokens, span, answer, noise, [(hook, span[0]), (hook, span[1] - 1)])
    return case


def _restore_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_restore_case(rng) for _ in range(n_random)]
    cases.append(_restore_random_model(rng))
    cases.append(_one_hook_two_positions(rng))
    cases += [_restore_case(rng, "property", probe, label) for probe, label in (
        (_no_noise_is_clean, "zero noise"), (_before_subject_restores_nothing, "a token before the subject"),
        (_last_token_restores_all, "the last token after the last block"))]
    return cases


def _fresh_noise(model, tokens, span, answer, noise, restore=()):
    return reference("05.2")(model, tokens, span, answer, torch.randn_like(noise), restore)


register(Exercise("05.2", _restore_cases, atol=1e-5, rtol=1e-4, timeout_s=30.0, diagnoses=[
    (_fresh_noise, "the noise is drawn inside the function: use the `noise` given, the same for every restoration"),
    (lambda model, tokens, span, answer, noise, restore=(): reference("05.2")(model, tokens, span, answer, noise, []),
     "nothing is restored: copy the clean row's activation at each (hook_name, position) into the corrupted rows"),
]))


# --- 05.3 window_layers -----------------------------------------------------------------------------
def _window_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        n_layers = int(rng.integers(2, 49))
        cases.append(Case("random", (int(rng.integers(n_layers)), int(rng.integers(1, 12)), n_layers)))
    cases += [Case("edge", (0, 10, 48), "layer 0 of GPT-2 XL, ROME's window"),
              Case("edge", (47, 10, 48), "the last layer of GPT-2 XL, ROME's window"),
              Case("edge", (20, 10, 48), "a middle layer, ROME's window of 10 (layers 15 to 24)"),
              Case("edge", (2, 3, 6), "an odd window in a 6-layer model"),
              Case("edge", (3, 4, 6), "an even window in a 6-layer model"),
              Case("edge", (1, 12, 6), "a window wider than the model"),
              Case("edge", (4, 1, 6), "a window of one layer")]
    return cases


register(Exercise("05.3", _window_cases, n_random=6, diagnoses=[
    (lambda layer, window, n_layers: list(range(layer - window // 2, layer - window // 2 + window)),
     "the window is not clipped to the model's layers (0 ... n_layers - 1)"),
    (lambda layer, window, n_layers: [l for l in range(layer - window // 2 + 1, layer - window // 2 + window + 1)
                                      if 0 <= l < n_layers], "the window starts one layer late: it starts at layer - window // 2"),
]))


# --- 05.4 effects_by_class --------------------------------------------------------------------------
CLASS_NAMES = ("first subject", "middle subject", "last subject", "first subsequent", "further", "last")


def _class_positions(n_pos: int, start: int, end: int) -> dict[str, list[int]]:
    """ROME's classes as position lists, written out one by one."""
    found: dict[str, list[int]] = {}
    if end - start >= 2:
        found["first subject"] = [start]
    if end - start >= 3:
        found["middle subject"] = list(range(start + 1, end - 1))
    found["last subject"] = [end - 1]
    if end <= n_pos - 2:
        found["first subsequent"] = [end]
    if end + 1 <= n_pos - 2:
        found["further"] = list(range(end + 1, n_pos - 1))
    found["last"] = [n_pos - 1]
    return found


def _matches_rome(call, case: Case) -> str | None:
    scores, span, low, high = case.args
    output = call(scores.clone(), span, low, high)
    if not isinstance(output, dict):
        return f"return a dict from class name to a [layer] tensor; got {type(output).__name__}"
    classes = _class_positions(scores.shape[0], *span)
    missing, extra = set(classes) - set(output), set(output) - set(classes)
    if missing or extra:
        return (f"with the subject at positions {span[0]} to {span[1] - 1} of {scores.shape[0]}, the classes are "
                f"{sorted(classes)}; yours has {sorted(output)}" + (" (a class with no token is left out)" if extra else ""))
    for name, positions in classes.items():
        want = ((scores[positions] - low) / (high - low)).mean(0)
        got = output[name]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return f"'{name}' should be a tensor of shape {list(want.shape)}, one value per layer"
        if not torch.allclose(got.double(), want.double(), atol=1e-5, rtol=1e-4):
            hint = " (recovered fraction: (score - low) / (high - low))" if name == "last" else ""
            return f"'{name}' differs from ROME's average for it{hint}"
    return None


def _synthetic_trace(rng: np.random.Generator, n_pos: int, start: int, length: int, label: str) -> Case:
    n_layers = int(rng.integers(2, 8))
    low = float(rng.uniform(0.0, 0.3))
    high = low + float(rng.uniform(0.2, 0.7))
    scores = torch.from_numpy(rng.uniform(low - 0.05, high, size=(n_pos, n_layers))).float()
    return Case("property", (scores, (start, start + length), low, high), label, probe=_matches_rome)


def _class_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for _ in range(n_random):
        length = int(rng.integers(1, 5))
        n_pos = int(rng.integers(length + 4, length + 12))
        start = int(rng.integers(1, n_pos - length - 2))
        cases.append(_synthetic_trace(rng, n_pos, start, length, f"a subject of {length} token(s)"))
    cases += [_synthetic_trace(rng, 8, 3, 1, "a one-token subject"),
              _synthetic_trace(rng, 9, 2, 4, "a four-token subject"),
              _synthetic_trace(rng, 7, 4, 2, "a subject just before the last token"),
              _synthetic_trace(rng, 8, 4, 2, "a subject followed by one token before the last")]
    return cases


register(Exercise("05.4", _class_cases, compare_values=False))


# --- 05.5 patch_run ---------------------------------------------------------------------------------
PATCH_HOOKS = ("hook_resid_post", "hook_resid_pre", "hook_mlp_out", "hook_attn_out", "attn.hook_z")


def _pair_case(rng: np.random.Generator, kind: str = "random", probe=None, label: str = "") -> Case:
    model = checker_model(FACTS_MODEL)
    prompt = _fact(rng)
    other = facts.swapped_subject(prompt, seed=int(rng.integers(10**6)))
    source, target = _fact_tokens(model, prompt), _fact_tokens(model, other)
    if rng.random() < 0.5:
        source, target = target, source
    return Case(kind, (model, source, target, _sites(rng, model, len(source), int(rng.integers(1, 4)), PATCH_HOOKS)), label, probe)


def _random_pair(rng: np.random.Generator) -> Case:
    model = checker_model(RANDOM_MODEL)
    pair = random_tokens(model, rng, 2, int(rng.integers(5, 10)))
    return Case("edge", (model, pair[0], pair[1], _sites(rng, model, pair.shape[1], 3, PATCH_HOOKS)),
                "a 3-layer model with d_model 48, random tokens")


def _logits(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens[None])[0, -1]


def _no_sites_is_target(call, case: Case) -> str | None:
    model, source, target, _ = case.args
    got = call(model, source, target, [])
    if not isinstance(got, torch.Tensor) or got.shape != (model.cfg.d_vocab,):
        return f"return the final position's logits, a tensor of shape [{model.cfg.d_vocab}]"
    return None if torch.allclose(got, _logits(model, target), atol=1e-4) else (
        "with no sites the result is the target's own run; yours differs: is the target the second prompt?")


def _last_site_is_source(call, case: Case) -> str | None:
    model, source, target, _ = case.args
    got = call(model, source, target, [(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post", len(target) - 1)])
    if not isinstance(got, torch.Tensor) or got.shape != (model.cfg.d_vocab,):
        return f"return the final position's logits, a tensor of shape [{model.cfg.d_vocab}]"
    return None if torch.allclose(got, _logits(model, source), atol=1e-4) else (
        "patching the last position after the last block gives the source run's logits; yours differs: are the "
        "patched values taken from the source run?")


def _pair_at_one_hook(rng: np.random.Generator) -> Case:
    """Every subject position patched at one hook: code that keys the sites by hook name keeps only the last."""
    model = checker_model(FACTS_MODEL)
    prompt = _fact(rng)
    source = _fact_tokens(model, prompt)
    target = source
    while int((source != target).sum()) < 2:  # another person whose clan and given name both differ
        target = _fact_tokens(model, facts.swapped_subject(prompt, seed=int(rng.integers(10**6))))
    positions = (source != target).nonzero()[:, 0].tolist()
    return Case("edge", (model, source, target, [("blocks.0.hook_resid_pre", position) for position in positions]),
                "several positions at one hook: the subject's tokens, embedded")


def _patch_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_pair_case(rng) for _ in range(n_random)]
    cases.append(_random_pair(rng))
    cases.append(_pair_at_one_hook(rng))
    cases += [_pair_case(rng, "property", _no_sites_is_target, "no sites"),
              _pair_case(rng, "property", _last_site_is_source, "the last position after the last block")]
    return cases


register(Exercise("05.5", _patch_cases, atol=1e-4, rtol=1e-4, timeout_s=30.0, diagnoses=[
    (lambda model, source, target, sites: reference("05.5")(model, target, source, sites),
     "source and target are swapped: run the target, with activations taken from the source"),
    (lambda model, source, target, sites: reference("05.5")(model, source, target, sites).softmax(-1),
     "these are probabilities: return the logits"),
]))


# --- IOI on ioi-lm: 05.6 patch_head, 05.7 head_direct_effects, 05.8 head_attribution ----------------
IOI_MODEL = "ioi-lm"


def _random_pair_batch(model, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompts and a copy with a few positions changed: [batch, pos] each."""
    clean = random_tokens(model, rng, int(rng.integers(2, 4)), int(rng.integers(6, 12)))
    corrupted = clean.clone()
    changed = rng.choice(np.arange(1, clean.shape[1]), size=2, replace=False)
    corrupted[:, changed] = torch.from_numpy(rng.integers(3, model.cfg.d_vocab, size=(clean.shape[0], 2)))
    return clean, corrupted


def _z_cache(model, tokens: torch.Tensor):
    with torch.no_grad():
        return model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))[1]


def _head_case(rng: np.random.Generator, kind: str = "random", probe=None, label: str = "") -> Case:
    model = checker_model(IOI_MODEL)
    batch = ioi_structure_batch(model, rng)
    layer, head = int(rng.integers(model.cfg.n_layers)), int(rng.integers(model.cfg.n_heads))
    return Case(kind, (model, batch.corrupted, _z_cache(model, batch.clean), layer, head), label, probe)


def _own_cache_changes_nothing(call, case: Case) -> str | None:
    model, corrupted, _, layer, head = case.args
    got = call(model, corrupted, _z_cache(model, corrupted), layer, head)
    with torch.no_grad():
        want = model(corrupted)[:, -1]
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return f"return the final position's logits, a tensor of shape {list(want.shape)} ([batch, vocab])"
    return None if torch.allclose(got, want, atol=1e-4) else (
        "restoring a head from the corrupted run's own cache must give the corrupted run's logits; yours differ: "
        "is the run the corrupted prompts, and only the restored head changed?")


def _head_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_head_case(rng) for _ in range(n_random)]
    model = checker_model(RANDOM_MODEL)
    clean, corrupted = _random_pair_batch(model, rng)
    cases.append(Case("edge", (model, corrupted, _z_cache(model, clean), model.cfg.n_layers - 1, model.cfg.n_heads - 1),
                      "a 3-layer model with 3 heads, its last head"))
    cases.append(_head_case(rng, "property", _own_cache_changes_nothing, "the corrupted run's own cache"))
    return cases


register(Exercise("05.6", _head_cases, atol=1e-4, rtol=1e-4, timeout_s=30.0, diagnoses=[
    (lambda model, corrupted, cache, layer, head: model(corrupted)[:, -1], "nothing is restored: the hook must write "
     "the clean cache's values for this head into a clone of z and return it"),
]))


def _dla_case(rng: np.random.Generator, kind: str = "random", probe=None, label: str = "") -> Case:
    model = checker_model(IOI_MODEL, compat=True)
    batch = ioi_structure_batch(model, rng)
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.clean)
    return Case(kind, (model, cache, batch.io, batch.s), label, probe)


def _dla_adds_up(call, case: Case) -> str | None:
    model, cache, io, s = case.args
    got = call(model, cache, io, s)
    shape = [model.cfg.n_layers, model.cfg.n_heads, len(io)]
    if not isinstance(got, torch.Tensor) or list(got.shape) != shape:
        return f"return a tensor of shape {shape} ([layer, head, batch])"
    scale = cache["ln_final.hook_scale"][:, -1, 0]
    direction = (model.W_U[:, io] - model.W_U[:, s]).T  # [batch, d_model]
    mlps = sum(cache[f"blocks.{l}.hook_mlp_out"][:, -1] for l in range(model.cfg.n_layers))
    rest = cache["hook_embed"][:, -1] + cache["hook_pos_embed"][:, -1] + mlps + sum(b.attn.b_O for b in model.blocks)
    with torch.no_grad():
        logits = model.unembed(model.ln_final(cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]))[:, -1]
        total = got.sum((0, 1)) + (rest * direction).sum(-1) / scale + model.b_U[io] - model.b_U[s]
    want = logits[torch.arange(len(io)), io] - logits[torch.arange(len(io)), s]
    return None if torch.allclose(total, want, atol=1e-3, rtol=1e-4) else (
        "the heads' effects plus the MLPs', the embeddings', the biases' should add up to the logit difference; they "
        f"miss it by up to {(total - want).abs().max():.3g}: each head's output at the last position, through W_O, "
        "on the answer direction, divided by the final LayerNorm scale")


@lru_cache(maxsize=None)
def _random_model_with_centred_unembedding():
    """random-3l3h with W_U centred over d_model, as compat mode folds it (ioi-lm's cases load that way). Then the
    answer direction sums to 0, so a head's output and its mean-removed version (LayerNorm's centring) have the same
    direct effect: DLA with or without the centring gives one answer, as on ioi-lm."""
    from utils.models import build_native

    with torch.random.fork_rng(devices=[]):
        model = build_native(_RANDOM_MODELS[RANDOM_MODEL]).eval()
    with torch.no_grad():
        model.W_U.sub_(model.W_U.mean(0, keepdim=True))  # [d_model, vocab], a view of the head's weight
        model(torch.zeros(1, 2, dtype=torch.long))
    return keep_pristine(model)


def _dla_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_dla_case(rng) for _ in range(n_random)]
    model = _random_model_with_centred_unembedding()
    tokens = random_tokens(model, rng, 3, int(rng.integers(5, 10)))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    io, s = torch.from_numpy(rng.integers(3, model.cfg.d_vocab, size=(2, 3)))
    cases.append(Case("edge", (model, cache, io, s), "a 3-layer model with 3 heads and d_model 48"))
    cases += [_dla_case(rng, "property", _dla_adds_up, "the parts add up to the logit difference")]
    return cases


register(Exercise("05.7", _dla_cases, atol=1e-4, rtol=1e-4, diagnoses=[
    (lambda model, cache, io, s: reference("05.7")(model, cache, io, s) * cache["ln_final.hook_scale"][:, -1, 0] ** 2,
     "the final LayerNorm scale multiplies: divide by it"),
    (lambda model, cache, io, s: reference("05.7")(model, cache, io, s) * cache["ln_final.hook_scale"][:, -1, 0],
     "the final LayerNorm scale is missing: divide each contribution by cache['ln_final.hook_scale'][:, -1]"),
    (lambda model, cache, io, s: -reference("05.7")(model, cache, io, s), "the sign is flipped: the direction is "
     "W_U[:, io] - W_U[:, s]"),
]))


def _attribution_case(rng: np.random.Generator, kind: str = "random", probe=None, label: str = "") -> Case:
    model = checker_model(IOI_MODEL)
    batch = ioi_structure_batch(model, rng)
    return Case(kind, (model, batch.clean, batch.corrupted, batch.io, batch.s), label, probe)


def _same_runs_estimate_zero(call, case: Case) -> str | None:
    model, clean, _, io, s = case.args
    got = call(model, clean, clean.clone(), io, s)
    shape = [model.cfg.n_layers, model.cfg.n_heads]
    if not isinstance(got, torch.Tensor) or list(got.shape) != shape:
        return f"return a tensor of shape {shape} ([layer, head])"
    return None if got.abs().max() < 1e-5 else (
        "with the clean prompts as the corrupted ones nothing changes, so every estimate must be 0; yours are not: "
        "multiply the gradient by (clean activation - corrupted activation)")


def _attribution_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_attribution_case(rng) for _ in range(n_random)]
    model = checker_model(RANDOM_MODEL)
    clean, corrupted = _random_pair_batch(model, rng)
    io, s = torch.from_numpy(rng.integers(3, model.cfg.d_vocab, size=(2, clean.shape[0])))
    cases.append(Case("edge", (model, clean, corrupted, io, s), "a 3-layer model with 3 heads, random prompts"))
    cases.append(_attribution_case(rng, "property", _same_runs_estimate_zero, "clean and corrupted the same"))
    return cases


register(Exercise("05.8", _attribution_cases, atol=1e-4, rtol=1e-3, timeout_s=30.0, diagnoses=[
    (lambda model, clean, corrupted, io, s: -reference("05.8")(model, clean, corrupted, io, s),
     "the sign is flipped: the step is clean - corrupted, the gradient taken in the corrupted run"),
    (lambda model, clean, corrupted, io, s: len(io) * reference("05.8")(model, clean, corrupted, io, s),
     "this is the sum over prompts: the metric is the mean logit difference over the batch"),
]))
