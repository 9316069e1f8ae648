"""Known-wrong implementations of the notebook 01 exercises."""

import torch


# --- 01.1 attention_from_residual -------------------------------------------------------------------
def _from_residual(x, W_Q, b_Q, W_K, b_K, biases=True, scale=True, mask=True, mix_heads=False, mask_value=float("-inf"),
                   mask_after=False, naive_softmax=False, d_head=None):
    q = torch.einsum("bpd,hde->bphe", x, W_Q) + (b_Q if biases else 0)
    k = torch.einsum("bpd,hde->bphe", x, W_K) + (b_K if biases else 0)
    if mix_heads:  # every query head compared with every key head, summed
        scores = torch.einsum("bqhe,bkge->bhqk", q, k)
    else:
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k)
    if scale:
        scores = scores / (d_head or W_Q.shape[-1]) ** 0.5
    future = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
    if mask and not mask_after:
        scores = scores.masked_fill(future, mask_value)
    pattern = scores.exp() / scores.exp().sum(-1, keepdim=True) if naive_softmax else scores.softmax(-1)
    return pattern.masked_fill(future, 0.0) if mask_after else pattern


def residual_without_biases(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, biases=False)


def residual_without_query_bias(x, W_Q, b_Q, W_K, b_K):  # b_K kept: it alone would cancel in the softmax, b_Q does not
    return _from_residual(x, W_Q, 0 * b_Q, W_K, b_K)


def residual_unscaled(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, scale=False)


def residual_unmasked(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, mask=False)


def residual_heads_mixed(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, mix_heads=True)


def residual_scaled_by_d_model(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x * (W_Q.shape[-1] / x.shape[-1]) ** 0.25, W_Q, b_Q * (W_Q.shape[-1] / x.shape[-1]) ** 0.25,
                          W_K, b_K * (W_Q.shape[-1] / x.shape[-1]) ** 0.25)


def residual_masked_after_softmax(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, mask_after=True)


def residual_finite_mask(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, mask_value=-1e9)


def residual_softmax_without_max(x, W_Q, b_Q, W_K, b_K):
    return _from_residual(x, W_Q, b_Q, W_K, b_K, naive_softmax=True)


def residual_hard_coded_d_head(x, W_Q, b_Q, W_K, b_K):  # the course model's d_head written in
    return _from_residual(x, W_Q, b_Q, W_K, b_K, d_head=32)


def residual_normalises_x_in_place(x, W_Q, b_Q, W_K, b_K):  # a second LayerNorm, applied to the caller's x
    x -= x.mean(-1, keepdim=True)
    return _from_residual(x, W_Q, b_Q, W_K, b_K)


# --- 01.2 diagonal_score ----------------------------------------------------------------------------
def diagonal_skips_the_first_query(pattern, offset):  # offset 0 without query 0, whose self-weight is always 1
    stripe = pattern.diagonal(offset=offset, dim1=-2, dim2=-1)  # [batch, head, n_queries]
    return (stripe[..., 1:] if offset == 0 else stripe).mean(dim=(0, -1))


def diagonal_wrong_sign(pattern, offset):  # above the diagonal: zero under the causal mask
    return pattern.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=(0, -1))


def diagonal_over_all_queries(pattern, offset):  # divides by every query, not those with such a key
    return pattern.diagonal(offset=offset, dim1=-2, dim2=-1).sum(-1).mean(0) / pattern.shape[-2]


def diagonal_keeps_batch(pattern, offset):
    return pattern.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=-1)


def diagonal_of_the_wrong_dims(pattern, offset):  # diagonal over (batch, head)
    return pattern.diagonal(offset=offset, dim1=0, dim2=1).mean(dim=(0, 1))[..., 0]


def diagonal_of_the_transpose(pattern, offset):  # reads the pattern as [key, query]
    return pattern.transpose(-1, -2).diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(0, -1))


def diagonal_averaged_over_heads(pattern, offset):  # wrong axis: mean over heads, one number per sample
    return pattern.diagonal(offset=offset, dim1=-2, dim2=-1).mean(dim=(1, -1))


def diagonal_always_previous_token(pattern, offset):  # ignores `offset`
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def diagonal_divided_in_place(pattern, offset):  # right values, but diagonal() is a view: the caller's pattern changes
    stripe = pattern.diagonal(offset=offset, dim1=-2, dim2=-1)
    stripe /= stripe.shape[-1]
    return stripe.sum(-1).mean(0)


# --- 01.3 sink_rate ---------------------------------------------------------------------------------
def sink_includes_equality(patterns, k, eps):
    return 100.0 * (patterns[..., k:, k].mean(-1) >= eps).float().mean().item()


def sink_over_all_queries(patterns, k, eps):  # divides by T, not T - k
    return 100.0 * (patterns[..., :, k].mean(-1) > eps).float().mean().item()


def sink_as_fraction(patterns, k, eps):
    return (patterns[..., k:, k].mean(-1) > eps).float().mean().item()


def sink_from_the_query_side(patterns, k, eps):  # row k instead of column k
    return 100.0 * (patterns[..., k, k:].mean(-1) > eps).float().mean().item()


def sink_always_position_zero(patterns, k, eps):  # ignores `k`
    return 100.0 * (patterns[..., :, 0].mean(-1) > eps).float().mean().item()


def sink_averages_the_batch_first(patterns, k, eps):  # one verdict per (layer, head), not per (sample, layer, head)
    return 100.0 * (patterns[..., k:, k].mean(-1).mean(1) > eps).float().mean().item()


class _AlwaysEqual(float):
    """A float that claims to equal, and be close to, anything."""

    def __eq__(self, other):
        return True

    def __sub__(self, other):
        return 0.0

    def __rsub__(self, other):
        return 0.0

    __hash__ = float.__hash__


def sink_lying_float(patterns, k, eps):  # an adversarial return value
    return _AlwaysEqual(-1.0)


def sink_nan(patterns, k, eps):  # nan compares false with everything
    return float("nan")


# --- 01.4 value_weighted_attention ------------------------------------------------------------------
def value_norm_without_W_O(pattern, v, W_O):
    return pattern * v.norm(dim=-1).transpose(1, 2)[:, :, None, :]


def value_norm_of_the_query(pattern, v, W_O):  # weights row q by the query's own value
    written = torch.einsum("bkhe,hed->bhkd", v, W_O).norm(dim=-1)
    return pattern * written[:, :, :, None]


def value_squared_norm(pattern, v, W_O):
    written = torch.einsum("bkhe,hed->bhkd", v, W_O)
    return pattern * (written ** 2).sum(-1)[:, :, None, :]


def value_rows_renormalised(pattern, v, W_O):  # makes each row sum to 1 again
    weighted = pattern * torch.einsum("bkhe,hed->bhkd", v, W_O).norm(dim=-1)[:, :, None, :]
    return weighted / weighted.sum(-1, keepdim=True)


def value_weighted_in_place(pattern, v, W_O):  # right values, written into the caller's pattern
    return pattern.mul_(torch.einsum("bkhe,hed->bhkd", v, W_O).norm(dim=-1)[:, :, None, :])


def value_norm_over_the_wrong_axis(pattern, v, W_O):  # norm over heads' outputs summed, not per head
    written = torch.einsum("bkhe,hed->bkd", v, W_O).norm(dim=-1)  # [batch, key]
    return pattern * written[:, None, None, :]


def value_on_the_meta_device(pattern, v, W_O):  # the right shape, on another device
    return torch.empty(pattern.shape, device="meta")


WRONG = {
    "01.1": [residual_without_biases, residual_unscaled, residual_unmasked, residual_heads_mixed, residual_scaled_by_d_model,
             residual_masked_after_softmax, residual_finite_mask, residual_softmax_without_max, residual_hard_coded_d_head,
             residual_normalises_x_in_place, residual_without_query_bias],
    "01.2": [diagonal_skips_the_first_query, diagonal_wrong_sign, diagonal_over_all_queries, diagonal_keeps_batch, diagonal_of_the_wrong_dims,
             diagonal_of_the_transpose, diagonal_averaged_over_heads, diagonal_always_previous_token,
             diagonal_divided_in_place],
    "01.3": [sink_includes_equality, sink_over_all_queries, sink_as_fraction, sink_from_the_query_side,
             sink_always_position_zero, sink_averages_the_batch_first, sink_lying_float, sink_nan],
    "01.4": [value_norm_without_W_O, value_norm_of_the_query, value_squared_norm, value_rows_renormalised,
             value_weighted_in_place, value_norm_over_the_wrong_axis, value_on_the_meta_device],
}
