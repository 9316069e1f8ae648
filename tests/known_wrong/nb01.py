"""Known-wrong implementations of the notebook 01 exercises."""

import torch


# --- 01.1 attention_from_residual -------------------------------------------------------------------
def _from_residual(x, W_Q, b_Q, W_K, b_K, biases=True, scale=True, mask=True, mix_heads=False):
    q = torch.einsum("bpd,hde->bphe", x, W_Q) + (b_Q if biases else 0)
    k = torch.einsum("bpd,hde->bphe", x, W_K) + (b_K if biases else 0)
    if mix_heads:  # every query head compared with every key head, summed
        scores = torch.einsum("bqhe,bkge->bhqk", q, k)
    else:
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k)
    if scale:
        scores = scores / W_Q.shape[-1] ** 0.5
    if mask:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1)


def residual_without_biases(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, biases=False)


def residual_unscaled(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, scale=False)


def residual_unmasked(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, mask=False)


def residual_heads_mixed(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, mix_heads=True)


def residual_scaled_by_d_model(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x * (W_Q.shape[-1] / x.shape[-1]) ** 0.25, W_Q, b_Q * (W_Q.shape[-1] / x.shape[-1]) ** 0.25,
                          W_K, b_K * (W_Q.shape[-1] / x.shape[-1]) ** 0.25)


# --- 01.2 diagonal_score ----------------------------------------------------------------------------
def diagonal_wrong_sign(pattern, offset):  # above the diagonal: zero under the causal mask
    return pattern.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=(0, -1))


def diagonal_over_all_queries(pattern, offset):  # divides by every query, not those with such a key
    return pattern.diagonal(offset=offset, dim1=-2, dim2=-1).sum(-1).mean(0) / pattern.shape[-2]


def diagonal_keeps_batch(pattern, offset):
    return pattern.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=-1)


def diagonal_of_the_wrong_dims(pattern, offset):  # diagonal over (batch, head)
    return pattern.diagonal(offset=offset, dim1=0, dim2=1).mean(dim=(0, 1))[..., 0]


# --- 01.3 sink_rate ---------------------------------------------------------------------------------
def sink_includes_equality(patterns, k, eps):
    return 100.0 * (patterns[..., k:, k].mean(-1) >= eps).float().mean().item()


def sink_over_all_queries(patterns, k, eps):  # divides by T, not T - k
    return 100.0 * (patterns[..., :, k].mean(-1) > eps).float().mean().item()


def sink_as_fraction(patterns, k, eps):
    return (patterns[..., k:, k].mean(-1) > eps).float().mean().item()


def sink_from_the_query_side(patterns, k, eps):  # row k instead of column k
    return 100.0 * (patterns[..., k, k:].mean(-1) > eps).float().mean().item()


# --- 01.4 value_weighted_attention ------------------------------------------------------------------
def value_norm_without_W_O(pattern, v, W_O):
    return pattern * v.norm(dim=-1).transpose(1, 2)[:, :, None, :]


def value_norm_of_the_query(pattern, v, W_O):  # weights row q by the query's own value
    written = torch.einsum("bkhe,hed->bhkd", v, W_O).norm(dim=-1)
    return pattern * written[:, :, :, None]


def value_squared_norm(pattern, v, W_O):
    written = torch.einsum("bkhe,hed->bhkd", v, W_O)
    return pattern * (written ** 2).sum(-1)[:, :, None, :]


WRONG = {
    "01.1": [residual_without_biases, residual_unscaled, residual_unmasked, residual_heads_mixed, residual_scaled_by_d_model],
    "01.2": [diagonal_wrong_sign, diagonal_over_all_queries, diagonal_keeps_batch, diagonal_of_the_wrong_dims],
    "01.3": [sink_includes_equality, sink_over_all_queries, sink_as_fraction, sink_from_the_query_side],
    "01.4": [value_norm_without_W_O, value_norm_of_the_query, value_squared_norm],
}
