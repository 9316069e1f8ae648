"""Known-wrong implementations of the notebook 04 exercises."""

import numpy as np
import torch
from scipy.linalg import orth
from sklearn.linear_model import LogisticRegression, RidgeClassifier
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
             probe_majority, probe_shuffled_labels],
    "04.3": [control_uniform, control_majority, control_true_labels, control_in_given_order, control_seed_ignored,
             control_by_type_frequency],
    "04.4": [inlp_rowspace, inlp_without_refitting_on_projected, inlp_last_direction_only, inlp_unnormalised,
             inlp_no_stopping_rule, inlp_one_round, inlp_budget_ignored],
    "04.5": [steer_one_layer_deeper, steer_subtracts, steer_every_position, steer_next_position,
             steer_first_vector_for_all, steer_hook_left_behind, steer_unit_vectors],
}
