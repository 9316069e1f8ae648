"""Known-wrong implementations of the notebook 00 exercises."""

import torch


# --- 00.1 per_token_loss ----------------------------------------------------------------------------
def loss_predicts_current_token(logits, tokens):  # off-by-one: no shift
    return -logits[:, 1:].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_shift_reversed(logits, tokens):  # off-by-one the other way: later logits, earlier tokens
    return -logits[:, 1:].log_softmax(-1).gather(-1, tokens[:, :-1, None]).squeeze(-1)


def loss_log_of_softmax(logits, tokens):  # unstable: log(0) = -inf on large logits
    return -logits[:, :-1].softmax(-1).log().gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_wrong_sign(logits, tokens):
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_softmax_over_positions(logits, tokens):  # wrong axis
    return -logits[:, :-1].log_softmax(1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_averaged(logits, tokens):  # mean instead of per token
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1).mean(-1)


def loss_in_bits(logits, tokens):
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1) / torch.log(torch.tensor(2.0))


def loss_normalises_the_logits_in_place(logits, tokens):  # right values, but the caller's logits are changed
    logits -= logits.logsumexp(-1, keepdim=True)
    return -logits[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_squeezes_every_dim(logits, tokens):  # .squeeze() also drops a batch of 1 (and a single prediction)
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze()


# --- 00.2 attention_pattern -------------------------------------------------------------------------
def _pattern(q, k, scale=True, mask_diagonal=1, softmax_dim=-1, masked=True, transpose=False, mask_value=float("-inf"),
             mask_after=False, naive_softmax=False):
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k)
    if transpose:
        scores = scores.transpose(-1, -2)
    if scale:
        scores = scores / q.shape[-1] ** 0.5
    future = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(diagonal=mask_diagonal)
    if masked and not mask_after:
        scores = scores.masked_fill(future, mask_value)
    if naive_softmax:
        pattern = scores.exp() / scores.exp().sum(softmax_dim, keepdim=True)
    else:
        pattern = scores.softmax(softmax_dim)
    return pattern.masked_fill(future, 0.0) if mask_after else pattern


def pattern_unscaled(q, k):
    return _pattern(q, k, scale=False)


def pattern_unmasked(q, k):
    return _pattern(q, k, masked=False)


def pattern_masked_after_softmax(q, k):
    return _pattern(q, k, mask_after=True)


def pattern_finite_mask(q, k):  # -1e9 loses to scores below it
    return _pattern(q, k, mask_value=-1e9)


def pattern_small_finite_mask(q, k):
    return _pattern(q, k, mask_value=-1e4)


def pattern_softmax_without_max(q, k):  # exp overflows on large scores
    return _pattern(q, k, naive_softmax=True)


def pattern_softmax_over_queries(q, k):
    return _pattern(q, k, softmax_dim=-2)


def pattern_mask_off_by_one(q, k):  # also masks the diagonal
    return _pattern(q, k, mask_diagonal=0)


def pattern_keys_and_queries_swapped(q, k):
    return _pattern(q, k, transpose=True)


def pattern_scales_q_in_place(q, k):  # right values, but the caller's q is changed
    q /= q.shape[-1] ** 0.5
    return _pattern(q, k, scale=False)


def pattern_hard_coded_d_head(q, k):  # the course model's d_head written in
    return _pattern(q * (q.shape[-1] / 32) ** 0.5, k)


# --- 00.3 residual_at -------------------------------------------------------------------------------
def residual_after_the_block(cache, layer, pos):  # off by one layer
    return cache["resid_post", min(layer, cache.model.cfg.n_layers - 1)][:, pos]


def residual_indexing_the_batch(cache, layer, pos):  # wrong axis
    n_layers = cache.model.cfg.n_layers
    stream = cache["resid_post", n_layers - 1] if layer == n_layers else cache["resid_pre", layer]
    return stream[pos]


def residual_without_the_final_layer(cache, layer, pos):  # layer == n_layers is not handled
    return cache["resid_pre", layer][:, pos]


def residual_position_off_by_one(cache, layer, pos):
    n_layers = cache.model.cfg.n_layers
    stream = cache["resid_post", n_layers - 1] if layer == n_layers else cache["resid_pre", layer]
    return stream[:, pos - 1]


def residual_hard_coded_six_layers(cache, layer, pos):  # the course model's depth written in
    stream = cache["resid_post", 5] if layer == 6 else cache["resid_pre", layer]
    return stream[:, pos]


def residual_centred_in_place(cache, layer, pos):  # edits the cached activation it returns
    n_layers = cache.model.cfg.n_layers
    stream = cache["resid_post", n_layers - 1] if layer == n_layers else cache["resid_pre", layer]
    out = stream[:, pos]
    out -= out.mean(-1, keepdim=True)
    return out


def residual_last_layer_never_drawn(cache, layer, pos):  # wrong only for the last block's input
    n_layers = cache.model.cfg.n_layers
    if layer >= n_layers - 1:
        return cache["resid_post", n_layers - 1][:, pos]
    return cache["resid_pre", layer][:, pos]


# --- 00.4 head_ablation_effect ----------------------------------------------------------------------
def _ablation(model, tokens, layer, head, zero, sign=1.0, subtract_clean=True):
    def hook(z, hook):
        zero(z, head)
        return z

    clean = model(tokens, return_type="loss")
    ablated = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
    return (sign * (ablated - clean) if subtract_clean else ablated).item()


def ablation_zeroes_a_position(model, tokens, layer, head):  # wrong axis: z[:, head] is a position
    return _ablation(model, tokens, layer, head, lambda z, h: z[:, h].zero_())


def ablation_zeroes_the_layer(model, tokens, layer, head):
    return _ablation(model, tokens, layer, head, lambda z, h: z.zero_())


def ablation_wrong_sign(model, tokens, layer, head):
    return _ablation(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), sign=-1.0)


def ablation_next_head(model, tokens, layer, head):  # off by one head
    return _ablation(model, tokens, layer, head, lambda z, h: z[:, :, (h + 1) % z.shape[2]].zero_())


def ablation_loss_not_difference(model, tokens, layer, head):
    return _ablation(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), subtract_clean=False)


def ablation_hard_coded_four_heads(model, tokens, layer, head):  # reshapes z as if every model had 4 heads
    return _ablation(model, tokens, layer, head, lambda z, h: z.view(*z.shape[:2], 4, -1)[:, :, h].zero_())


def ablation_leaves_its_hook_on(model, tokens, layer, head):  # right value, but the model keeps the hook
    def zero_head(z, hook):
        z[:, :, head] = 0.0
        return z

    clean = model(tokens, return_type="loss").item()
    model.add_hook(f"blocks.{layer}.attn.hook_z", zero_head)
    return model(tokens, return_type="loss").item() - clean


def ablation_by_zeroing_weights(model, tokens, layer, head):  # edits the model's weights and never restores them
    clean = model(tokens, return_type="loss").item()
    with torch.no_grad():
        for parameter in model.blocks[layer].attn.parameters():
            parameter.zero_()
    return model(tokens, return_type="loss").item() - clean


WRONG = {
    "00.1": [loss_predicts_current_token, loss_shift_reversed, loss_log_of_softmax, loss_wrong_sign,
             loss_softmax_over_positions, loss_averaged, loss_in_bits, loss_normalises_the_logits_in_place,
             loss_squeezes_every_dim],
    "00.2": [pattern_unscaled, pattern_unmasked, pattern_masked_after_softmax, pattern_finite_mask, pattern_small_finite_mask,
             pattern_softmax_without_max, pattern_softmax_over_queries, pattern_mask_off_by_one,
             pattern_keys_and_queries_swapped, pattern_scales_q_in_place, pattern_hard_coded_d_head],
    "00.3": [residual_after_the_block, residual_indexing_the_batch, residual_without_the_final_layer,
             residual_position_off_by_one, residual_hard_coded_six_layers, residual_centred_in_place,
             residual_last_layer_never_drawn],
    "00.4": [ablation_zeroes_a_position, ablation_zeroes_the_layer, ablation_wrong_sign, ablation_next_head,
             ablation_loss_not_difference, ablation_hard_coded_four_heads, ablation_leaves_its_hook_on,
             ablation_by_zeroing_weights],
}
