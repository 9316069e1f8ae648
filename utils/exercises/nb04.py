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
    # No floor here: with d > n_train the probe fits noise, and a fitted-noise probe can score well under the majority
    # class. The "about the majority class" floor is checked where it holds: few dimensions, many rows (_plain_accuracy).
    return None


def _linear_only(call, case: Case) -> str | None:
    """An XOR of two coordinates: a linear probe stays near chance; a non-linear one reads it."""
    accuracies, problem = _accuracies(call, case)
    if problem:
        return problem
    return None if accuracies[0] < 0.7 else (f"the labels are an XOR of two coordinates, which no linear probe reads, "
                                             f"yet yours scores {accuracies[0]:.2f}: use logistic regression, not an MLP")


def _exact_labels(rng: np.random.Generator, n: int, shares: tuple[float, ...]) -> np.ndarray:
    """n labels 0, 1, ... in exactly these shares (rounded), in random order."""
    counts = np.round(np.array(shares) * n).astype(int)
    counts[0] += n - counts.sum()
    return rng.permutation(np.repeat(np.arange(len(shares)), counts))


def _leak_case(rng: np.random.Generator) -> Case:
    """More dimensions than training and test rows together, so that any fit which sees test rows memorises them.

    Layer 0: noise in both splits. Layer 1: the training features are separable, the test features a fresh
    draw of noise (the rule does not carry over). Fit on train and scored on test, both sit at chance.
    """
    n_train, n_test, d = 40, 300, 400
    y_train, y_test = _exact_labels(rng, n_train, (0.5, 0.5)), _exact_labels(rng, n_test, (0.5, 0.5))
    noise = rng.standard_normal((n_train + n_test, d))
    shifted = np.concatenate([_separable(rng, n_train, d, y_train), rng.standard_normal((n_test, d))])
    layers = np.stack([noise, shifted])
    return Case("property", (layers[:, :n_train], y_train, layers[:, n_train:], y_test),
                "d = 400 > n_train + n_test; layer 1's rule holds in the training split only", probe=_no_test_rows_seen)


def _no_test_rows_seen(call, case: Case) -> str | None:
    accuracies, problem = _accuracies(call, case)
    if problem:
        return problem
    X_train, y_train, X_test, y_test = case.args
    chance = _majority(y_train, y_test)
    if accuracies[0] > chance + 0.15:
        return (f"layer 0 is noise in {X_train.shape[2]} dimensions, more than the training and test rows together: "
                f"only a probe that has seen test rows can score clearly above the majority class there; yours scores "
                f"{accuracies[0]:.2f}: fit on the training split alone, then score on the test split")
    if accuracies[1] > chance + 0.15:
        return (f"layer 1's training features are separable but its test features are noise, so a probe fitted on the "
                f"training split scores about the majority class's share on the test split; yours scores "
                f"{accuracies[1]:.2f}: is your score computed on the test split (not cross-validated on the training split)?")
    return None


def _missing_class_case(rng: np.random.Generator) -> Case:
    """Three separable classes in the training split; the test split holds only classes 0 and 1."""
    n_train, n_test, d = 150, 120, 16
    y_train, y_test = _exact_labels(rng, n_train, (0.3, 0.3, 0.4)), _exact_labels(rng, n_test, (0.5, 0.5))
    features = _separable(rng, n_train + n_test, d, np.concatenate([y_train, y_test]))
    return Case("property", (features[None, :n_train], y_train, features[None, n_train:], y_test),
                "three classes in the training split, two of them in the test split", probe=_trained_on_train)


def _trained_on_train(call, case: Case) -> str | None:
    accuracies, problem = _accuracies(call, case)
    if problem:
        return problem
    if accuracies[0] < 0.9:
        return (f"the classes are linearly separable, so a probe fitted on the training split (all three classes) "
                f"classifies the test split (two of them) almost perfectly; yours scores {accuracies[0]:.2f}: is it "
                f"fitted on the test split, or scored on the training split?")
    return None


def _imbalanced_case(rng: np.random.Generator) -> Case:
    """Labels 80/20; layer 0 noise in a few dimensions (a probe predicts the majority class), layer 1 separable."""
    n_train, n_test, d = 500, 500, 4
    y_train, y_test = _exact_labels(rng, n_train, (0.8, 0.2)), _exact_labels(rng, n_test, (0.8, 0.2))
    labels = np.concatenate([y_train, y_test])
    layers = np.stack([rng.standard_normal((n_train + n_test, d)), _separable(rng, n_train + n_test, d, labels)])
    return Case("property", (layers[:, :n_train], y_train, layers[:, n_train:], y_test),
                "labels 80/20; layer 0 is noise in 4 dimensions", probe=_plain_accuracy)


def _plain_accuracy(call, case: Case) -> str | None:
    accuracies, problem = _accuracies(call, case)
    if problem:
        return problem
    chance = _majority(*case.args[1::2])
    if abs(accuracies[0] - chance) > 0.08:
        return (f"on noise a probe predicts the majority class, so its accuracy (the share of test rows it gets right) "
                f"is about the majority class's share; yours scores {accuracies[0]:.2f}: return the plain "
                f"accuracy (probe.score), not the balanced accuracy or another metric")
    return None


def _small_scale_case(rng: np.random.Generator) -> Case:
    """Two separable dimensions a thousand times smaller than six noise dimensions: an L2-penalised probe on raw
    features cannot afford the weights it needs there; standardised, it reads them."""
    n_train, n_test = 300, 300
    labels = _exact_labels(rng, n_train + n_test, (0.5, 0.5))
    features = np.concatenate([1e-3 * _separable(rng, n_train + n_test, 2, labels),
                               rng.standard_normal((n_train + n_test, 6))], axis=1)
    return Case("property", (features[None, :n_train], labels[:n_train], features[None, n_train:], labels[n_train:]),
                "the separable dimensions 1000 times smaller than the noise", probe=_standardised)


def _standardised(call, case: Case) -> str | None:
    accuracies, problem = _accuracies(call, case)
    if problem:
        return problem
    return None if accuracies[0] > 0.95 else (
        f"two dimensions separate the classes but are 1000 times smaller than the others; yours scores "
        f"{accuracies[0]:.2f}: standardise the features before the probe (StandardScaler in the pipeline), or the "
        f"penalty on the weights keeps the probe from reading small-scale directions")


def _probe_cases(rng: np.random.Generator, n_random: int) -> list[Case]:
    cases = [_probe_case(rng, False, "noise, separable, XOR and noise layers; labels 0/1, 70 % zeros; d > n_train")]
    cases.append(_probe_case(rng, True, "four string labels (tags), the most frequent 40 %"))
    X, y = _xor(rng, 600, 6)
    cases.append(Case("property", (X[None, :400], y[:400], X[None, 400:], y[400:]), "an XOR", probe=_linear_only))
    cases.append(_leak_case(rng))
    cases.append(_missing_class_case(rng))
    cases.append(_imbalanced_case(rng))
    cases.append(_small_scale_case(rng))
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
                return problem or ("the mapping changed when the same words (and their labels) came in another order: "
                                   "every split must see the same mapping; draw over the sorted distinct types, from "
                                   "the label values and their counts (np.unique), not from the label array itself")
        if kind == "marginal":
            task_values, task_counts = np.unique(labels, return_counts=True)
            drawn = np.array([sum(1 for v in mapping.values() if v == value) for value in task_values.tolist()])
            p = chisquare(drawn, task_counts / task_counts.sum() * drawn.sum()).pvalue
            if p < 0.001:
                share = ", ".join(f"{v}: {d / drawn.sum():.2f} (task {c / task_counts.sum():.2f})"
                                  for v, d, c in zip(task_values, drawn, task_counts))
                return f"control labels must follow the task's label distribution (chi-squared p = {p:.1g}): {share}"
        if kind == "runs":
            sequence = np.array([str(mapping[t]) for t in sorted(mapping)])
            changes, mean, sd = _label_changes(sequence)
            if abs(changes - mean) > 6 * sd:
                return (f"along the sorted words the control label changes {changes} times in {len(sequence) - 1} "
                        f"neighbours, {'fewer' if changes < mean else 'more'} than independent draws give (z = "
                        f"{(changes - mean) / sd:.0f}): draw each word's label independently, and do not sort or "
                        f"arrange the drawn labels")
        if kind == "random":
            truth = dict(zip(case.args[0], labels.tolist()))
            same = np.mean([mapping[t] == truth[t] for t in mapping])
            if same > 0.75:
                return f"{same:.0%} of the words keep their task label: control labels are drawn at random, not copied"
        return None
    return probe


def _label_changes(sequence: np.ndarray) -> tuple[int, float, float]:
    """How often neighbours differ in `sequence`, and that count's mean and standard deviation over random orders of
    the same labels (a runs test: independent draws are, given their counts, a random order)."""
    changes = int(np.sum(sequence[1:] != sequence[:-1]))
    _, codes = np.unique(sequence, return_inverse=True)
    orders = np.random.default_rng(0).permuted(np.tile(codes, (2000, 1)), axis=1)
    null = np.sum(orders[:, 1:] != orders[:, :-1], axis=1)
    return changes, float(null.mean()), float(max(null.std(), 1.0))


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
    types = _tokens(rng, _vocabulary(rng, 300), 1500)
    cases.append(Case("property", (types, _skewed_labels(rng, len(types)), int(rng.integers(1000))),
                      "300 types: neighbours in sorted order get independent labels (a runs test)",
                      probe=_control_probe("runs")))
    return cases


register(Exercise("04.3", _control_cases, compare_values=False))


# --- 04.4 inlp_projection ---------------------------------------------------------------------------
def _informative(rng: np.random.Generator, n: int, d: int, k: int, separation: float = 3.0):
    """Binary labels carried by k random directions of a d-dimensional Gaussian: X [n, d], y [n]."""
    y = (rng.random(n) < 0.5).astype(int)
    directions = np.linalg.qr(rng.standard_normal((d, k)))[0].T  # [k, d]
    X = rng.standard_normal((n, d)) + separation * (2 * y[:, None] - 1) @ np.ones((1, k)) @ directions / np.sqrt(k)
    return X, y


def _anisotropic(rng: np.random.Generator, n: int, d: int, k: int):
    """Binary labels shifting k coordinates by +-1, whose noise scales differ (0.2 .. 2), in a random rotation: each
    classifier direction leaves some of the shift behind, so INLP keeps finding more (about 6 to 8 before chance)."""
    y = (rng.random(n) < 0.5).astype(int)
    scales = np.ones(d)
    scales[:k] = np.geomspace(0.2, 2.0, k)
    Z = rng.standard_normal((n, d)) * scales
    Z[:, :k] += (2 * y[:, None] - 1)
    return Z @ np.linalg.qr(rng.standard_normal((d, d)))[0].T, y


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
    rank_P = np.linalg.matrix_rank(P, tol=1e-6)  # absolute: P = 0 (W spans everything) is rank 0, not its rounding noise's
    if rank_P != P.shape[0] - rank:
        return f"P has rank {rank_P}; removing exactly the span of W (rank {rank}) leaves {P.shape[0] - rank}"
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
        if kind == "noise_majority" and len(W):
            return (f"the labels are noise, {np.mean(y == np.bincount(y).argmax()):.0%} of them one class, so a probe "
                    f"starts at the majority class's accuracy; yet {len(W)} directions were removed: chance is the dev "
                    f"accuracy of always predicting the most frequent training label, not 0.5")
        if kind == "small_dev" and len(W):
            return (f"the labels are noise, yet {len(W)} directions were removed: with only {len(y_dev)} dev rows in "
                    f"{X.shape[1]} dimensions, a classifier fitted on the dev rows beats chance on them; fit on (X, y) "
                    f"and score on (X_dev, y_dev)")
        if kind == "small_train" and len(W):
            return (f"the labels are noise, yet {len(W)} directions were removed: with only {len(y)} training rows in "
                    f"{X.shape[1]} dimensions a classifier always fits its training rows; judge it by its accuracy on "
                    f"(X_dev, y_dev)")
        if kind == "within_tolerance" and len(W):
            return (f"the first probe's dev accuracy is within tolerance = {case.args[5]} of the majority class, so "
                    f"nothing is removed; yours removed {len(W)} directions: does your stopping rule use `tolerance`?")
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
    tolerance = round(float(rng.uniform(0.06, 0.1)), 3)  # dev accuracy on noise: chance +- 0.011 (one sd)
    cases.append(Case("property", (X[:600], y[:600], X[600:], y[600:], 10, tolerance),
                      f"labels that are noise (tolerance {tolerance})", probe=_inlp_probe("noise")))
    X, y = _anisotropic(rng, 1200, 20, 6)
    cases.append(Case("property", (X[:800], y[:800], X[800:], y[800:], 2), "max_directions = 2", probe=_inlp_probe("budget")))
    for n_dev, d, kind in ((2000, 12, "noise_majority"), (40, 30, "small_dev")):
        y = np.concatenate([_exact_labels(rng, 2000, (0.85, 0.15)), _exact_labels(rng, n_dev, (0.85, 0.15))])
        X = rng.standard_normal((len(y), d))
        tolerance = round(float(rng.uniform(0.01, 0.05)), 3)
        cases.append(Case("property", (X[:2000], y[:2000], X[2000:], y[2000:], 10, tolerance),
                          f"labels that are noise, 85 % one class; {n_dev} dev rows in {d} dimensions (tolerance "
                          f"{tolerance})", probe=_inlp_probe(kind)))
    y = np.concatenate([_exact_labels(rng, 40, (0.5, 0.5)), _exact_labels(rng, 4000, (0.5, 0.5))])
    X = rng.standard_normal((len(y), 30))
    tolerance = round(float(rng.uniform(0.05, 0.08)), 3)  # dev accuracy on noise: 0.5 +- 0.008 (one sd)
    cases.append(Case("property", (X[:40], y[:40], X[40:], y[40:], 10, tolerance),
                      f"labels that are noise; 40 training rows in 30 dimensions (tolerance {tolerance})",
                      probe=_inlp_probe("small_train")))
    y = np.concatenate([_exact_labels(rng, 3000, (0.5, 0.5)), _exact_labels(rng, 3000, (0.5, 0.5))])
    direction = np.linalg.qr(rng.standard_normal((10, 1)))[0][:, 0]
    X = rng.standard_normal((len(y), 10)) + 0.2 * (2 * y[:, None] - 1) * direction
    tolerance = round(float(rng.uniform(0.15, 0.2)), 3)
    cases.append(Case("property", (X[:3000], y[:3000], X[3000:], y[3000:], 10, tolerance),
                      f"one weak direction, a probe within tolerance = {tolerance} of the majority class",
                      probe=_inlp_probe("within_tolerance")))
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
