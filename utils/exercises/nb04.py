"""Checkers for 04_probing: the residual stack, probes by layer, Hewitt & Liang's control task, INLP, and
steering along a direction."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import chisquare
from sklearn.linear_model import LogisticRegression

from utils.checking import Case, Exercise, reference, register
from utils.exercises._inputs import RANDOM_MODEL, checker_model, random_tokens


# --- 04.1 residual_stack ----------------------------------------------------------------------------
def _stack_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [Case("random", (checker_model("course-lm"), random_tokens(checker_model("course-lm"), rng,
                                                                         int(rng.integers(1, 4)), int(rng.integers(3, 12)))))
             for _ in range(n_random)]
    other = checker_model(RANDOM_MODEL)
    cases.append(Case("edge", (other, random_tokens(other, rng, 2, 7)), "a 3-layer model with d_model 48"))
    cases.append(Case("edge", (checker_model("course-lm"), random_tokens(checker_model("course-lm"), rng, 1, 1)),
                      "a single token (BOS)"))
    return cases


def _one_per_layer(output: torch.Tensor, case: Case) -> str | None:
    model = case.args[0]
    expected = model.cfg.n_layers + 1
    if not isinstance(output, torch.Tensor) or output.ndim != 4 or output.shape[0] != expected:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return (f"expected [n_layers + 1, batch, pos, d_model] = [{expected}, ...] (resid_pre of every block and the "
                f"last resid_post); got {shape}")
    return None


register(Exercise("04.1", _stack_cases, invariants=[_one_per_layer], atol=1e-5, rtol=1e-4, diagnoses=[
    (lambda model, tokens: reference("04.1")(model, tokens)[1:], "the embeddings (layer 0, resid_pre of block 0) are missing"),
    (lambda model, tokens: reference("04.1")(model, tokens)[:-1], "the last block's resid_post is missing"),
    (lambda model, tokens: reference("04.1")(model, tokens).flip(0), "the layers are in reverse order"),
]))


# --- 04.2 probe_by_layer ----------------------------------------------------------------------------
def _separable(rng: np.random.Generator, n: int, d: int, labels: np.ndarray) -> np.ndarray:
    """Features in which each class sits around its own well separated centre: [n, d]."""
    classes = np.unique(labels)
    centres = {c: 6.0 * rng.standard_normal(d) for c in classes}
    return np.stack([centres[y] for y in labels]) + rng.standard_normal((n, d))


def _xor(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Features whose label is the XOR of the signs of two coordinates: no linear probe reads it."""
    X = rng.standard_normal((n, d))
    return X, ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)


def _layers(rng: np.random.Generator, n_train: int, n_test: int, d: int, p_majority: float, string_labels: bool = False):
    """Four layers of features: noise, linearly separable, XOR, noise again; labels [n]."""
    n = n_train + n_test
    if string_labels:
        labels = rng.choice(np.array(["DET", "NOUN", "VERB", "ADJ"]), size=n, p=[p_majority, 0.2, 0.15, 0.65 - p_majority])
    else:
        labels = (rng.random(n) > p_majority).astype(int)
    xor_X, xor_y = _xor(rng, n, d)
    layers = np.stack([rng.standard_normal((n, d)), _separable(rng, n, d, labels), xor_X, rng.standard_normal((n, d))])
    return layers, labels, xor_y


def _probe_case(rng: np.random.Generator, string_labels: bool, label: str) -> Case:
    n_train, n_test, d = 120, 200, 64 if not string_labels else 24
    layers, labels, _ = _layers(rng, n_train, n_test, d, 0.7 if not string_labels else 0.4, string_labels)
    return Case("property", (layers[:, :n_train], labels[:n_train], layers[:, n_train:], labels[n_train:]), label,
                probe=_reads_what_is_there)


def _majority(y_train: np.ndarray, y_test: np.ndarray) -> float:
    values, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == values[counts.argmax()]))


def _accuracies(call, case: Case) -> tuple[np.ndarray | None, str | None]:
    output = call(*case.args)
    try:
        accuracies = np.asarray(output, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None, f"return one accuracy per layer (an array of floats); got {type(output).__name__}"
    if len(accuracies) != len(case.args[0]):
        return None, f"expected {len(case.args[0])} accuracies, one per layer; got {len(accuracies)}"
    if not np.all((accuracies >= 0) & (accuracies <= 1)):
        return None, f"accuracies lie between 0 and 1; got {accuracies.round(3).tolist()}"
    return accuracies, None


def _reads_what_is_there(call, case: Case) -> str | None:
    """Layer 0 and 3: noise (about the majority class); layer 1: separable (near 1); the same labels throughout."""
    accuracies, problem = _accuracies(call, case)
    if problem:
        return problem
    X_train, y_train, X_test, y_test = case.args
    chance = _majority(y_train, y_test)
    if accuracies[1] < 0.95:
        return f"layer 1 is linearly separable, so a linear probe scores about 1.0 on its test set; yours scores {accuracies[1]:.2f}"
    for layer in (0, 3):
        if accuracies[layer] > chance + 0.12:
            return (f"layer {layer} holds pure noise (test majority class {chance:.2f}), yet your probe scores "
                    f"{accuracies[layer]:.2f}: is it scored on the data it was trained on?")
    if min(accuracies[0], accuracies[3]) < chance - 0.2:
        return f"on pure noise a probe should score about the majority class ({chance:.2f}); yours scores {min(accuracies[0], accuracies[3]):.2f}"
    return None


def _linear_only(call, case: Case) -> str | None:
    """An XOR of two coordinates: a linear probe stays near chance; a non-linear one reads it."""
    accuracies, problem = _accuracies(call, case)
    if problem:
        return problem
    return None if accuracies[0] < 0.7 else (f"the labels are an XOR of two coordinates, which no linear probe reads, "
                                             f"yet yours scores {accuracies[0]:.2f}: use logistic regression, not an MLP")


def _probe_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_probe_case(rng, False, "noise, separable, XOR and noise layers; labels 0/1, 70 % zeros; d > n_train")]
    cases.append(_probe_case(rng, True, "four string labels (tags), the most frequent 40 %"))
    X, y = _xor(rng, 600, 6)
    cases.append(Case("property", (X[None, :400], y[:400], X[None, 400:], y[400:]), "an XOR", probe=_linear_only))
    return cases


register(Exercise("04.2", _probe_cases, compare_values=False, timeout_s=30.0))


# --- 04.3 control_mapping ---------------------------------------------------------------------------
def _mapping(call, types: list[str], labels: np.ndarray, seed: int) -> tuple[dict | None, str | None]:
    output = call(list(types), labels.copy(), seed)
    if not isinstance(output, dict):
        return None, f"return a dict from word to label; got {type(output).__name__}"
    missing = sorted(set(types) - set(output))
    if missing:
        return None, f"every word type needs a label; {len(missing)} have none (e.g. {missing[0]!r})"
    allowed = set(labels.tolist())
    strange = [v for v in output.values() if (v.item() if hasattr(v, "item") else v) not in allowed]
    if strange:
        return None, f"control labels must be labels of the task; {strange[0]!r} is not one"
    return {t: output[t].item() if hasattr(output[t], "item") else output[t] for t in set(types)}, None


def _vocabulary(rng: np.random.Generator, n_types: int) -> list[str]:
    return [f"w{i}" for i in rng.permutation(n_types)]


def _tokens(rng: np.random.Generator, vocabulary: list[str], n: int) -> list[str]:
    """n occurrences of the types, some many times (a Zipf-like draw), every type at least once."""
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)
    drawn = rng.choice(len(vocabulary), size=n - len(vocabulary), p=weights / weights.sum())
    return list(vocabulary) + [vocabulary[i] for i in drawn]


def _skewed_labels(rng: np.random.Generator, n: int, values=("A", "B", "C"), p=(0.6, 0.3, 0.1)) -> np.ndarray:
    return rng.choice(np.array(values), size=n, p=list(p))


def _control_probe(kind: str):
    def probe(call, case: Case) -> str | None:
        types, labels, seed = case.args
        mapping, problem = _mapping(call, types, labels, seed)
        if problem:
            return problem
        if kind == "deterministic":
            again, problem = _mapping(call, types, labels, seed)
            if problem or again != mapping:
                return problem or "the same seed gave another mapping: draw with np.random.default_rng(seed)"
            other, _ = _mapping(call, types, labels, seed + 1)
            if other == mapping:
                return "another seed gave the same mapping: the seed must drive the draw"
        if kind == "order":
            order = np.random.default_rng(seed + 99).permutation(len(types))
            shuffled, problem = _mapping(call, [types[i] for i in order], labels[order], seed)
            if problem or shuffled != mapping:
                return problem or ("the mapping changed when the same words came in another order: every split must "
                                   "see the same mapping (draw over the sorted distinct types)")
        if kind == "marginal":
            task_values, task_counts = np.unique(labels, return_counts=True)
            drawn = np.array([sum(1 for v in mapping.values() if v == value) for value in task_values.tolist()])
            p = chisquare(drawn, task_counts / task_counts.sum() * drawn.sum()).pvalue
            if p < 0.001:
                share = ", ".join(f"{v}: {d / drawn.sum():.2f} (task {c / task_counts.sum():.2f})"
                                  for v, d, c in zip(task_values, drawn, task_counts))
                return f"control labels must follow the task's label distribution (chi-squared p = {p:.1g}): {share}"
        if kind == "random":
            truth = dict(zip(case.args[0], labels.tolist()))
            same = np.mean([mapping[t] == truth[t] for t in mapping])
            if same > 0.75:
                return f"{same:.0%} of the words keep their task label: control labels are drawn at random, not copied"
        return None
    return probe


def _control_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    vocabulary = _vocabulary(rng, 3000)
    types = _tokens(rng, vocabulary, 9000)
    cases.append(Case("property", (types, _skewed_labels(rng, len(types)), int(rng.integers(1000))),
                      "3000 types, labels 60/30/10 %", probe=_control_probe("marginal")))
    small = _vocabulary(rng, 40)
    types = _tokens(rng, small, 300)
    cases.append(Case("property", (types, (rng.random(len(types)) < 0.3).astype(int), int(rng.integers(1000))),
                      "40 types, labels 0/1", probe=_control_probe("deterministic")))
    cases.append(Case("property", (types, _skewed_labels(rng, len(types)), int(rng.integers(1000))),
                      "the same words in another order", probe=_control_probe("order")))
    words = _vocabulary(rng, 400)  # each type with one true label, as with part of speech
    truth = dict(zip(words, _skewed_labels(rng, len(words), p=(0.4, 0.35, 0.25)).tolist()))
    types = _tokens(rng, words, 1200)
    cases.append(Case("property", (types, np.array([truth[t] for t in types]), int(rng.integers(1000))),
                      "each word has one true label", probe=_control_probe("random")))
    return cases


register(Exercise("04.3", _control_cases, compare_values=False))


# --- 04.4 inlp_projection ---------------------------------------------------------------------------
def _informative(rng: np.random.Generator, n: int, d: int, k: int, separation: float = 3.0):
    """Binary labels carried by k random directions of a d-dimensional Gaussian: X [n, d], y [n]."""
    y = (rng.random(n) < 0.5).astype(int)
    directions = np.linalg.qr(rng.standard_normal((d, k)))[0].T  # [k, d]
    X = rng.standard_normal((n, d)) + separation * (2 * y[:, None] - 1) @ np.ones((1, k)) @ directions / np.sqrt(k)
    return X, y


def _result(call, case: Case) -> tuple[np.ndarray, np.ndarray, str | None]:
    output = call(*case.args)
    if not (isinstance(output, tuple) and len(output) == 2):
        return None, None, "return a tuple (P, W): the projection [d, d] and the removed directions [k, d]"
    P, W = (np.asarray(a, dtype=float) for a in output)
    d = case.args[0].shape[1]
    if P.shape != (d, d) or W.ndim != 2 or W.shape[1] != d:
        return None, None, f"P must be [{d}, {d}] and W [k, {d}]; got {P.shape} and {W.shape}"
    return P, W, None


def _projection_properties(P: np.ndarray, W: np.ndarray, X: np.ndarray) -> str | None:
    if not np.allclose(P, P.T, atol=1e-8):
        return "P is not symmetric: an orthogonal projection is (use P = I - B B^T with B orthonormal)"
    if not np.allclose(P @ P, P, atol=1e-8):
        return "P @ P differs from P: a projection is idempotent (orthonormalise the directions: scipy.linalg.orth(W.T))"
    if len(W) and np.abs(W @ P @ X.T).max() > 1e-6 * max(1.0, np.abs(W @ X.T).max()):
        return "W P x is not 0: P must remove every direction in W"
    rank = np.linalg.matrix_rank(W) if len(W) else 0
    if np.linalg.matrix_rank(P) != P.shape[0] - rank:
        return f"P has rank {np.linalg.matrix_rank(P)}; removing exactly the span of W (rank {rank}) leaves {P.shape[0] - rank}"
    return None


def _inlp_probe(kind: str):
    def probe(call, case: Case) -> str | None:
        X, y, X_dev, y_dev, max_directions = case.args[:5]
        P, W, problem = _result(call, case)
        if problem:
            return problem
        problem = _projection_properties(P, W, X)
        if problem:
            return problem
        if len(W) > max_directions:
            return f"{len(W)} directions removed; max_directions is {max_directions}"
        if kind == "noise" and len(W):
            return f"the labels are noise (a probe is at chance from the start), yet {len(W)} directions were removed"
        if kind == "removes":
            after = LogisticRegression(max_iter=1000).fit(X @ P, y).score(X_dev @ P, y_dev)
            chance = _majority(y, y_dev)
            if after > chance + 0.08:
                return (f"after your projection a fresh logistic probe still scores {after:.2f} on held-out data "
                        f"(majority {chance:.2f}): has every direction so far been projected out before refitting?")
        if kind == "budget" and len(W) != max_directions:
            return f"the labels need more directions than max_directions = {max_directions}; remove exactly that many, got {len(W)}"
        return None
    return probe


def _inlp_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = []
    for k, d in ((1, 10), (3, 16)):
        X, y = _informative(rng, 1400, d, k)
        cases.append(Case("property", (X[:1000], y[:1000], X[1000:], y[1000:], 20),
                          f"labels carried by {k} direction(s) of {d}", probe=_inlp_probe("removes")))
    X = rng.standard_normal((2600, 12))
    y = (rng.random(2600) < 0.5).astype(int)
    cases.append(Case("property", (X[:600], y[:600], X[600:], y[600:], 10, 0.05), "labels that are noise (tolerance 0.05)",
                      probe=_inlp_probe("noise")))
    X, y = _informative(rng, 1200, 20, 6, separation=6.0)
    cases.append(Case("property", (X[:800], y[:800], X[800:], y[800:], 2), "max_directions = 2", probe=_inlp_probe("budget")))
    return cases


register(Exercise("04.4", _inlp_cases, compare_values=False, timeout_s=30.0))


# --- 04.5 steer -------------------------------------------------------------------------------------
def _steer_case(rng: np.random.Generator, name: str, kind: str, batch: int, length: int, layer: int | None,
                label: str = "") -> Case:
    model = checker_model(name)
    tokens = random_tokens(model, rng, batch, length)
    layer = int(rng.integers(0, model.cfg.n_layers + 1)) if layer is None else layer % (model.cfg.n_layers + 1)
    positions = torch.from_numpy(rng.integers(0, length, batch))
    vectors = torch.from_numpy(rng.standard_normal((batch, model.cfg.d_model)) * 3).float()
    return Case(kind, (model, tokens, layer, positions, vectors), label)


def _leaves_the_model_alone(call, case: Case) -> str | None:
    model, tokens = case.args[:2]
    with torch.no_grad():
        before = model(tokens)
        call(*case.args)
        after = model(tokens)
    return None if torch.equal(before, after) else "after your call the model computes something else: a hook was left behind"


def _steer_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_steer_case(rng, "course-lm", "random", int(rng.integers(1, 5)), int(rng.integers(3, 10)), None)
             for _ in range(n_random)]
    cases.append(_steer_case(rng, "course-lm", "edge", 3, 6, -1, "the last layer: the final resid_post"))
    cases.append(_steer_case(rng, "course-lm", "edge", 3, 6, 0, "layer 0: the embeddings"))
    cases.append(_steer_case(rng, RANDOM_MODEL, "edge", 2, 5, 2, "a 3-layer model with d_model 48"))
    steady = _steer_case(rng, "course-lm", "property", 2, 6, 3, "the model afterwards")
    cases.append(Case("property", steady.args, steady.label, probe=_leaves_the_model_alone))
    return cases


def _at_every_position(model, tokens, layer, positions, vectors):
    from utils.probing import residual_hook_name

    def add_everywhere(resid, hook):
        return resid + vectors[:, None, :].to(resid.dtype)

    hook_name = residual_hook_name(model, layer)
    return model.run_with_hooks(tokens, fwd_hooks=[(hook_name, add_everywhere)])


register(Exercise("04.5", _steer_cases, atol=1e-4, rtol=1e-4, diagnoses=[
    (lambda model, tokens, layer, positions, vectors: reference("04.5")(model, tokens, min(layer + 1, model.cfg.n_layers), positions, vectors),
     "one layer too deep: layer l is the input of block l (resid_pre), not its output"),
    (lambda model, tokens, layer, positions, vectors: reference("04.5")(model, tokens, layer, positions, -vectors),
     "the vectors are subtracted: add them"),
    (_at_every_position, "the vector is added at every position: only at positions[b] of row b"),
]))
