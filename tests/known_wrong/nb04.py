"""Known-wrong implementations of the notebook 04 exercises."""

import numpy as np
import torch
from scipy.linalg import orth
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from utils.probing import residual_hook_name


# --- 04.1 residual_stack ----------------------------------------------------------------------------
def _stack(model, tokens, names):
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return torch.stack([cache[name] for name in names])


def stack_resid_post_only(model, tokens):  # misses the embeddings
    return _stack(model, tokens, [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)])


def stack_resid_pre_only(model, tokens):  # misses the last block's output
    return _stack(model, tokens, [f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers)])


def stack_resid_mid(model, tokens):  # after attention, before the MLP
    n = model.cfg.n_layers
    return _stack(model, tokens, [f"blocks.{l}.hook_resid_mid" for l in range(n)] + [f"blocks.{n - 1}.hook_resid_post"])


def stack_reversed(model, tokens):
    names = [residual_hook_name(model, l) for l in range(model.cfg.n_layers + 1)]
    return _stack(model, tokens, names[::-1])


def stack_batch_first(model, tokens):
    names = [residual_hook_name(model, l) for l in range(model.cfg.n_layers + 1)]
    return _stack(model, tokens, names).transpose(0, 1)


def stack_course_lm_layers(model, tokens):  # course-lm's 6 layers written in
    names = [residual_hook_name(model, l) for l in range(6 + 1)]
    return _stack(model, tokens, names)


def stack_token_embeddings(model, tokens):  # hook_embed misses the positional embedding at layer 0
    n = model.cfg.n_layers
    return _stack(model, tokens, ["hook_embed"] + [f"blocks.{l}.hook_resid_post" for l in range(n)])


# --- 04.2 probe_by_layer ----------------------------------------------------------------------------
def _probe():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def probe_scored_on_train(X_train, y_train, X_test, y_test):
    return np.array([_probe().fit(a, y_train).score(a, y_train) for a in X_train])


def probe_trained_on_test(X_train, y_train, X_test, y_test):
    return np.array([_probe().fit(b, y_test).score(b, y_test) for b in X_test])


def probe_mlp(X_train, y_train, X_test, y_test):
    return np.array([make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=500, random_state=0))
                     .fit(a, y_train).score(b, y_test) for a, b in zip(X_train, X_test)])


def probe_error_rate(X_train, y_train, X_test, y_test):
    return np.array([1 - _probe().fit(a, y_train).score(b, y_test) for a, b in zip(X_train, X_test)])


def probe_first_layer_only(X_train, y_train, X_test, y_test):
    probe = _probe().fit(X_train[0], y_train)
    return np.array([probe.score(b, y_test) for b in X_test])


def probe_majority(X_train, y_train, X_test, y_test):
    values, counts = np.unique(y_train, return_counts=True)
    return np.full(len(X_train), np.mean(y_test == values[counts.argmax()]))


def probe_shuffled_labels(X_train, y_train, X_test, y_test):
    y = np.random.default_rng(0).permutation(y_train)
    return np.array([_probe().fit(a, y).score(b, y_test) for a, b in zip(X_train, X_test)])


def probe_roles_swapped(X_train, y_train, X_test, y_test):  # fitted on the test split, scored on the training split
    return np.array([_probe().fit(b, y_test).score(a, y_train) for a, b in zip(X_train, X_test)])


def probe_cross_validated_on_train(X_train, y_train, X_test, y_test):  # 5-fold CV on train; the test split unused
    return np.array([cross_val_score(_probe(), a, y_train, cv=5).mean() for a in X_train])


def probe_fit_on_train_and_test(X_train, y_train, X_test, y_test):  # the test rows leak into the fit
    return np.array([_probe().fit(np.concatenate([a, b]), np.concatenate([y_train, y_test])).score(b, y_test)
                     for a, b in zip(X_train, X_test)])


def probe_fit_on_train_and_half_the_test(X_train, y_train, X_test, y_test):  # "more data": half the test rows leak
    h = len(y_test) // 2
    return np.array([_probe().fit(np.concatenate([a, b[:h]]), np.concatenate([y_train, y_test[:h]])).score(b, y_test)
                     for a, b in zip(X_train, X_test)])


def probe_balanced_accuracy(X_train, y_train, X_test, y_test):  # the mean recall per class, not the accuracy
    return np.array([balanced_accuracy_score(y_test, _probe().fit(a, y_train).predict(b))
                     for a, b in zip(X_train, X_test)])


def probe_unscaled(X_train, y_train, X_test, y_test):  # no StandardScaler, scikit-learn's defaults
    return np.array([LogisticRegression().fit(a, y_train).score(b, y_test) for a, b in zip(X_train, X_test)])


# --- 04.3 control_mapping ---------------------------------------------------------------------------
def control_uniform(types, labels, seed):  # ignores the label distribution
    vocabulary, values = sorted(set(types)), np.unique(labels)
    rng = np.random.default_rng(seed)
    return {w: values[rng.integers(len(values))] for w in vocabulary}


def control_majority(types, labels, seed):
    values, counts = np.unique(labels, return_counts=True)
    return {w: values[counts.argmax()] for w in set(types)}


def control_true_labels(types, labels, seed):  # the task, not a control
    return dict(zip(types, labels))


def control_in_given_order(types, labels, seed):  # draws in the order the words come: another split, another map
    values, counts = np.unique(labels, return_counts=True)
    rng, mapping = np.random.default_rng(seed), {}
    for w in types:
        if w not in mapping:
            mapping[w] = values[rng.choice(len(values), p=counts / counts.sum())]
    return mapping


def control_seed_ignored(types, labels, seed):
    values, counts = np.unique(labels, return_counts=True)
    vocabulary = sorted(set(types))
    drawn = np.random.default_rng(0).choice(len(values), size=len(vocabulary), p=counts / counts.sum())
    return {w: values[i] for w, i in zip(vocabulary, drawn)}


def control_by_type_frequency(types, labels, seed):  # each type's label drawn from the distribution over types
    values, counts = np.unique(labels, return_counts=True)
    vocabulary = sorted(set(types))
    p = np.linspace(1, 2, len(values))  # a distribution that is not the task's
    drawn = np.random.default_rng(seed).choice(len(values), size=len(vocabulary), p=p / p.sum())
    return {w: values[i] for w, i in zip(vocabulary, drawn)}


def control_drawn_then_sorted(types, labels, seed):  # right distribution, but handed out in sorted blocks
    values, counts = np.unique(labels, return_counts=True)
    vocabulary = sorted(set(types))
    drawn = np.sort(np.random.default_rng(seed).choice(len(values), size=len(vocabulary), p=counts / counts.sum()))
    return {w: values[i] for w, i in zip(vocabulary, drawn)}


# --- 04.4 inlp_projection ---------------------------------------------------------------------------
def _chance(y, y_dev):
    values, counts = np.unique(y, return_counts=True)
    return np.mean(y_dev == values[counts.argmax()])


def inlp_rowspace(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):  # keeps the directions, removes the rest
    P, W = np.eye(X.shape[1]), np.zeros((0, X.shape[1]))
    while len(W) < max_directions:
        probe = RidgeClassifier().fit(X @ P, y)
        if probe.score(X_dev @ P, y_dev) <= _chance(y, y_dev) + tolerance:
            break
        W = np.concatenate([W, probe.coef_.reshape(-1, X.shape[1])])
        B = orth(W.T)
        P = np.eye(X.shape[1]) - B @ B.T
    B = orth(W.T) if len(W) else np.zeros((X.shape[1], 0))
    return B @ B.T, W


def inlp_without_refitting_on_projected(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):
    P, W = np.eye(X.shape[1]), np.zeros((0, X.shape[1]))
    while len(W) < max_directions:
        probe = RidgeClassifier().fit(X, y)  # the same direction every time
        if probe.score(X_dev @ P, y_dev) <= _chance(y, y_dev) + tolerance:
            break
        W = np.concatenate([W, probe.coef_.reshape(-1, X.shape[1])])
        B = orth(W.T)
        P = np.eye(X.shape[1]) - B @ B.T
    return P, W


def inlp_last_direction_only(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):
    P, W = np.eye(X.shape[1]), np.zeros((0, X.shape[1]))
    while len(W) < max_directions:
        probe = RidgeClassifier().fit(X @ P, y)
        if probe.score(X_dev @ P, y_dev) <= _chance(y, y_dev) + tolerance:
            break
        w = probe.coef_.reshape(-1, X.shape[1])
        W = np.concatenate([W, w])
        P = np.eye(X.shape[1]) - w.T @ w / (w @ w.T)  # forgets the earlier directions
    return P, W


def inlp_unnormalised(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):
    P, W = np.eye(X.shape[1]), np.zeros((0, X.shape[1]))
    while len(W) < max_directions:
        probe = RidgeClassifier().fit(X @ P, y)
        if probe.score(X_dev @ P, y_dev) <= _chance(y, y_dev) + tolerance:
            break
        W = np.concatenate([W, probe.coef_.reshape(-1, X.shape[1])])
        P = np.eye(X.shape[1]) - W.T @ W  # not a projection unless the rows are orthonormal
    return P, W


def inlp_no_stopping_rule(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):
    P, W = np.eye(X.shape[1]), np.zeros((0, X.shape[1]))
    while len(W) < max_directions:
        probe = RidgeClassifier().fit(X @ P, y)
        W = np.concatenate([W, probe.coef_.reshape(-1, X.shape[1])])
        B = orth(W.T)
        P = np.eye(X.shape[1]) - B @ B.T
    return P, W


def inlp_one_round(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):
    w = RidgeClassifier().fit(X, y).coef_.reshape(-1, X.shape[1])
    B = orth(w.T)
    return np.eye(X.shape[1]) - B @ B.T, w


def inlp_budget_ignored(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):
    P, W = np.eye(X.shape[1]), np.zeros((0, X.shape[1]))
    while len(W) < X.shape[1]:
        probe = RidgeClassifier().fit(X @ P, y)
        if probe.score(X_dev @ P, y_dev) <= _chance(y, y_dev) + tolerance:
            break
        W = np.concatenate([W, probe.coef_.reshape(-1, X.shape[1])])
        B = orth(W.T)
        P = np.eye(X.shape[1]) - B @ B.T
    return P, W


def _inlp(X, y, X_dev, y_dev, max_directions, tolerance, chance, fit=None, scored=None):
    """INLP whose probe is fitted on `fit` (default (X, y)) and scored on `scored` (default the dev split)."""
    P, W = np.eye(X.shape[1]), np.zeros((0, X.shape[1]))
    fit_X, fit_y = fit or (X, y)
    score_X, score_y = scored or (X_dev, y_dev)
    while len(W) < max_directions:
        probe = RidgeClassifier().fit(fit_X @ P, fit_y)
        if probe.score(score_X @ P, score_y) <= chance + tolerance:
            break
        W = np.concatenate([W, probe.coef_.reshape(-1, X.shape[1])])
        B = orth(W.T)
        P = np.eye(X.shape[1]) - B @ B.T
    return P, W


def inlp_chance_is_half(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):  # not the majority class's accuracy
    return _inlp(X, y, X_dev, y_dev, max_directions, tolerance, 0.5)


def inlp_fit_and_score_on_dev(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):  # the training split unused
    chance = max(np.mean(y_dev == 0), np.mean(y_dev == 1))
    return _inlp(X, y, X_dev, y_dev, max_directions, tolerance, chance, fit=(X_dev, y_dev))


def inlp_scored_on_train(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):  # training accuracy decides when to stop
    values, counts = np.unique(y, return_counts=True)
    return _inlp(X, y, X_dev, y_dev, max_directions, tolerance, np.mean(y == values[counts.argmax()]), scored=(X, y))


def inlp_tolerance_ignored(X, y, X_dev, y_dev, max_directions=20, tolerance=0.01):  # always the default 0.01
    return _inlp(X, y, X_dev, y_dev, max_directions, 0.01, _chance(y, y_dev))


# --- 04.5 steer -------------------------------------------------------------------------------------
def _add_hook(rows, positions, vectors, sign=1.0):
    def add(resid, hook):
        resid = resid.clone()
        resid[rows, positions] += sign * vectors.to(resid.dtype)
        return resid
    return add


def steer_one_layer_deeper(model, tokens, layer, positions, vectors):
    name = f"blocks.{min(layer, model.cfg.n_layers - 1)}.hook_resid_post"
    return model.run_with_hooks(tokens, fwd_hooks=[(name, _add_hook(torch.arange(len(tokens)), positions, vectors))])


def steer_subtracts(model, tokens, layer, positions, vectors):
    hook = _add_hook(torch.arange(len(tokens)), positions, vectors, sign=-1.0)
    return model.run_with_hooks(tokens, fwd_hooks=[(residual_hook_name(model, layer), hook)])


def steer_every_position(model, tokens, layer, positions, vectors):
    def add(resid, hook):
        return resid + vectors[:, None, :].to(resid.dtype)
    return model.run_with_hooks(tokens, fwd_hooks=[(residual_hook_name(model, layer), add)])


def steer_next_position(model, tokens, layer, positions, vectors):
    shifted = (positions + 1).clamp(max=tokens.shape[1] - 1)
    hook = _add_hook(torch.arange(len(tokens)), shifted, vectors)
    return model.run_with_hooks(tokens, fwd_hooks=[(residual_hook_name(model, layer), hook)])


def steer_first_vector_for_all(model, tokens, layer, positions, vectors):
    hook = _add_hook(torch.arange(len(tokens)), positions, vectors[:1].expand_as(vectors))
    return model.run_with_hooks(tokens, fwd_hooks=[(residual_hook_name(model, layer), hook)])


def steer_hook_left_behind(model, tokens, layer, positions, vectors):
    model.add_hook(residual_hook_name(model, layer), _add_hook(torch.arange(len(tokens)), positions, vectors))
    return model(tokens)


def steer_unit_vectors(model, tokens, layer, positions, vectors):
    hook = _add_hook(torch.arange(len(tokens)), positions, vectors / vectors.norm(dim=-1, keepdim=True))
    return model.run_with_hooks(tokens, fwd_hooks=[(residual_hook_name(model, layer), hook)])


WRONG = {
    "04.1": [stack_resid_post_only, stack_resid_pre_only, stack_resid_mid, stack_reversed, stack_batch_first,
             stack_course_lm_layers, stack_token_embeddings],
    "04.2": [probe_scored_on_train, probe_trained_on_test, probe_mlp, probe_error_rate, probe_first_layer_only,
             probe_majority, probe_shuffled_labels, probe_roles_swapped, probe_cross_validated_on_train,
             probe_fit_on_train_and_test, probe_fit_on_train_and_half_the_test, probe_balanced_accuracy, probe_unscaled],
    "04.3": [control_uniform, control_majority, control_true_labels, control_in_given_order, control_seed_ignored,
             control_by_type_frequency, control_drawn_then_sorted],
    "04.4": [inlp_rowspace, inlp_without_refitting_on_projected, inlp_last_direction_only, inlp_unnormalised,
             inlp_no_stopping_rule, inlp_one_round, inlp_budget_ignored, inlp_chance_is_half, inlp_fit_and_score_on_dev,
             inlp_scored_on_train, inlp_tolerance_ignored],
    "04.5": [steer_one_layer_deeper, steer_subtracts, steer_every_position, steer_next_position,
             steer_first_vector_for_all, steer_hook_left_behind, steer_unit_vectors],
}
