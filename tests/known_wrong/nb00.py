"""Known-wrong implementations of the notebook 00 exercises."""

import torch


# --- 00.1 per_token_loss ----------------------------------------------------------------------------
def loss_predicts_current_token(logits, tokens):  # off-by-one: no shift
    return -logits[:, 1:].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_log_of_softmax(logits, tokens):  # unstable: log(0) = -inf on large logits
    return -logits[:, :-1].softmax(-1).log().gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_wrong_sign(logits, tokens):
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_softmax_over_positions(logits, tokens):  # wrong axis
    return -logits[:, :-1].log_softmax(1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def loss_averaged(logits, tokens):  # mean instead of per token
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1).mean(-1)


# --- 00.2 attention_pattern -------------------------------------------------------------------------
def _pattern(q, k, scale=True, mask_diagonal=1, softmax_dim=-1, masked=True, transpose=False):
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k)
    if transpose:
        scores = scores.transpose(-1, -2)
    if scale:
        scores = scores / q.shape[-1] ** 0.5
    if masked:
        future = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(diagonal=mask_diagonal)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(softmax_dim)


def pattern_unscaled(q, k):
    return _pattern(q, k, scale=False)


def pattern_unmasked(q, k):
    return _pattern(q, k, masked=False)


def pattern_softmax_over_queries(q, k):
    return _pattern(q, k, softmax_dim=-2)


def pattern_mask_off_by_one(q, k):  # also masks the diagonal
    return _pattern(q, k, mask_diagonal=0)


def pattern_keys_and_queries_swapped(q, k):
    return _pattern(q, k, transpose=True)


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


WRONG = {
    "00.1": [loss_predicts_current_token, loss_log_of_softmax, loss_wrong_sign, loss_softmax_over_positions, loss_averaged],
    "00.2": [pattern_unscaled, pattern_unmasked, pattern_softmax_over_queries, pattern_mask_off_by_one,
             pattern_keys_and_queries_swapped],
    "00.3": [residual_after_the_block, residual_indexing_the_batch, residual_without_the_final_layer,
             residual_position_off_by_one],
    "00.4": [ablation_zeroes_a_position, ablation_zeroes_the_layer, ablation_wrong_sign, ablation_next_head,
             ablation_loss_not_difference],
}
