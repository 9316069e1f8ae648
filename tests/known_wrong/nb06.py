"""Known-wrong implementations of the notebook 06 exercises."""

import torch


# --- 06.1 relative_attention --------------------------------------------------------------------------
def relative_mean_includes_s(scores, d, s):
    return (scores[d, s] - scores[d, : d + 1].mean()).item()


def relative_divides_by_d_plus_one(scores, d, s):
    row = scores[d, : d + 1]
    return (row[s] - (row.sum() - row[s]) / (d + 1)).item()


def relative_future_keys_included(scores, d, s):
    row = scores[d]
    return (row[s] - (row.sum() - row[s]) / (len(row) - 1)).item()


def relative_transposed(scores, d, s):
    col = scores[: d + 1, d]
    return (col[s] - (col.sum() - col[s]) / d).item()


def relative_of_the_pattern(scores, d, s):
    row = scores[d, : d + 1].softmax(-1)
    return (row[s] - (row.sum() - row[s]) / d).item()


def relative_minus_max(scores, d, s):
    row = scores[d, : d + 1]
    return (row[s] - row.max()).item()


def relative_without_the_query_itself(scores, d, s):  # drops key d from the others as well
    others = [t for t in range(d) if t != s] or [s]
    return (scores[d, s] - scores[d, others].mean()).item()


def relative_raw_score(scores, d, s):
    return scores[d, s].item()


# --- 06.2 omega_matrices ------------------------------------------------------------------------------
def _omegas(qk, column, row):
    return torch.cat([qk, column[:, None]], 1), torch.cat([qk, row[None]], 0)


def omega_biases_swapped(W_Q, W_K, b_Q, b_K):
    return _omegas(W_Q @ W_K.T, W_Q @ b_Q, W_K @ b_K)


def omega_sides_swapped(W_Q, W_K, b_Q, b_K):
    qk = W_Q @ W_K.T
    return torch.cat([qk, (W_K @ b_Q)[:, None]], 1), torch.cat([qk, (W_Q @ b_K)[None]], 0)


def omega_scaled(W_Q, W_K, b_Q, b_K):
    scale = W_Q.shape[1] ** 0.5
    return tuple(m / scale for m in _omegas(W_Q @ W_K.T, W_Q @ b_K, W_K @ b_Q))


def omega_transposed_qk(W_Q, W_K, b_Q, b_K):
    return _omegas(W_K @ W_Q.T, W_Q @ b_K, W_K @ b_Q)


def omega_no_biases(W_Q, W_K, b_Q, b_K):
    return _omegas(W_Q @ W_K.T, torch.zeros(W_Q.shape[0], dtype=W_Q.dtype), torch.zeros(W_K.shape[0], dtype=W_K.dtype))


def omega_bias_product_appended(W_Q, W_K, b_Q, b_K):  # the constant b_Q b_K belongs to neither side
    qk = W_Q @ W_K.T
    constant = (b_Q @ b_K).reshape(1)
    return (torch.cat([qk, torch.cat([W_Q @ b_K])[:, None] + constant], 1),
            torch.cat([qk, (W_K @ b_Q)[None] + constant], 0))


def omega_not_augmented(W_Q, W_K, b_Q, b_K):
    qk = W_Q @ W_K.T
    return qk, qk


# --- 06.3 signal_terms --------------------------------------------------------------------------------
def _terms(omega_d, omega_s, X, d, s, rank, *, mean_over=None, tilde_end=0.0, sigma=True, key_aug=True, sort=False,
           full=False, swap=False):
    if mean_over == "all_visible":
        visible = X[: d + 1]
        delta = X[s] - visible.mean(0)
    elif mean_over == "everything":
        others = [t for t in range(len(X)) if t != s]
        delta = X[s] - X[others].mean(0)
    else:
        others = [t for t in range(d + 1) if t != s]
        delta = X[s] - X[others].mean(0)
    delta_tilde = torch.cat([delta, torch.full((1,), tilde_end, dtype=X.dtype)])
    x_tilde = torch.cat([X[d], torch.ones(1, dtype=X.dtype) if key_aug else torch.zeros(1, dtype=X.dtype)])
    k = None if full else rank
    U, S, Vh = torch.linalg.svd(omega_d, full_matrices=False)
    query_terms = (X[d] @ U[:, :k]) * (S[:k] if sigma else 1) * (Vh[:k] @ delta_tilde)
    U, S, Vh = torch.linalg.svd(omega_s, full_matrices=False)
    key_terms = (x_tilde @ U[:, :k]) * (S[:k] if sigma else 1) * (Vh[:k] @ delta)
    if sort:
        query_terms, key_terms = query_terms.sort(descending=True).values, key_terms.sort(descending=True).values
    return (key_terms, query_terms) if swap else (query_terms, key_terms)


def terms_mean_includes_s(omega_d, omega_s, X, d, s, rank):
    return _terms(omega_d, omega_s, X, d, s, rank, mean_over="all_visible")


def terms_mean_over_every_position(omega_d, omega_s, X, d, s, rank):
    return _terms(omega_d, omega_s, X, d, s, rank, mean_over="everything")


def terms_delta_tilde_ends_in_one(omega_d, omega_s, X, d, s, rank):
    return _terms(omega_d, omega_s, X, d, s, rank, tilde_end=1.0)


def terms_without_sigma(omega_d, omega_s, X, d, s, rank):
    return _terms(omega_d, omega_s, X, d, s, rank, sigma=False)


def terms_query_bias_dropped(omega_d, omega_s, X, d, s, rank):  # x̃_d without its 1 on the key side
    return _terms(omega_d, omega_s, X, d, s, rank, key_aug=False)


def terms_sorted(omega_d, omega_s, X, d, s, rank):
    return _terms(omega_d, omega_s, X, d, s, rank, sort=True)


def terms_not_truncated(omega_d, omega_s, X, d, s, rank):
    return _terms(omega_d, omega_s, X, d, s, rank, full=True)


def terms_sides_swapped(omega_d, omega_s, X, d, s, rank):
    return _terms(omega_d, omega_s, X, d, s, rank, swap=True)


def terms_numerical_rank(omega_d, omega_s, X, d, s, rank):  # `rank` ignored: every non-zero singular value kept
    numerical = int((torch.linalg.svdvals(omega_d) > 1e-10 * torch.linalg.svdvals(omega_d)[0]).sum())
    return _terms(omega_d, omega_s, X, d, s, numerical)


# --- 06.4 minimal_signal ------------------------------------------------------------------------------
def _greedy(terms, *, key=None, fraction=1.0, rounding=True, strict=False, ascending=False, sort_indices=False,
            guard=True, by_index=False, decimals=5):
    total = terms.sum().item()
    if guard and total <= 0:
        return torch.empty(0, dtype=torch.long)
    ranking = terms if key is None else key(terms)
    order = torch.arange(len(terms)) if by_index else ranking.argsort(descending=not ascending)
    running = 0.0
    chosen = order
    for size, index in enumerate(order.tolist(), start=1):
        running += terms[index].item()
        frac = running / total if total else 0.0
        frac = round(frac, decimals) if rounding else frac
        if (frac > fraction) if strict else (frac >= fraction):
            chosen = order[:size]
            break
    return chosen.sort().values if sort_indices else chosen


def signal_by_absolute_value(terms):
    return _greedy(terms, key=torch.abs)


def signal_seventy_percent(terms):
    return _greedy(terms, fraction=0.7)


def signal_without_rounding(terms):
    return _greedy(terms, rounding=False)


def signal_strictly_above_total(terms):
    return _greedy(terms, strict=True)


def signal_smallest_first(terms):
    return _greedy(terms, ascending=True)


def signal_indices_sorted(terms):
    return _greedy(terms, sort_indices=True)


def signal_negative_total_not_handled(terms):
    return _greedy(terms, guard=False)


def signal_in_svd_order(terms):
    return _greedy(terms, by_index=True)


def signal_four_decimals(terms):  # stops while 2e-5 of the total is still missing
    return _greedy(terms, decimals=4)


# --- 06.5 residual_parts ------------------------------------------------------------------------------
def _parts(model, tokens, layer, *, scale=True, centre=True, split=True, bias=True, mlp=True, positions=True,
           mlp_first=False, transpose=False, source_major=False):
    _, cache = model.run_with_cache(tokens[None])
    n_pos = tokens.shape[0]
    embed = cache["hook_embed"][0] + (cache["hook_pos_embed"][0] if positions else 0)
    blocks = [embed]
    for earlier in range(layer):
        A = cache["pattern", earlier][0]
        if transpose:
            A = A.transpose(-1, -2)
        v = cache["v", earlier][0]
        heads = []
        for head in range(model.cfg.n_heads):
            by_source = A[head][:, :, None] * (v[:, head] @ model.W_O[earlier, head])[None]  # [pos, source, d_model]
            heads.append(by_source.transpose(0, 1) if split else by_source.sum(1, keepdim=True).transpose(0, 1))
        if source_major:
            blocks += [heads[h][i] for i in range(heads[0].shape[0]) for h in range(model.cfg.n_heads)]
        else:
            blocks += [row for h in heads for row in h]
        tail = []
        if bias:
            tail.append(model.b_O[earlier].repeat(n_pos, 1))
        if mlp:
            tail.append(cache["mlp_out", earlier][0])
        blocks += tail[::-1] if mlp_first else tail
    parts = torch.stack(blocks)
    if centre:
        parts = parts - parts.mean(-1, keepdim=True)
    return parts / cache[f"blocks.{layer}.ln1.hook_scale"][0] if scale else parts


def parts_not_scaled(model, tokens, layer):
    return _parts(model, tokens, layer, scale=False)


def parts_not_centred(model, tokens, layer):
    return _parts(model, tokens, layer, centre=False)


def parts_heads_not_split_by_source(model, tokens, layer):
    return _parts(model, tokens, layer, split=False)


def parts_without_output_bias(model, tokens, layer):
    return _parts(model, tokens, layer, bias=False)


def parts_without_mlps(model, tokens, layer):
    return _parts(model, tokens, layer, mlp=False)


def parts_without_position_embedding(model, tokens, layer):
    return _parts(model, tokens, layer, positions=False)


def parts_mlp_before_bias(model, tokens, layer):
    return _parts(model, tokens, layer, mlp_first=True)


def parts_pattern_transposed(model, tokens, layer):
    return _parts(model, tokens, layer, transpose=True)


def parts_source_major(model, tokens, layer):
    return _parts(model, tokens, layer, source_major=True)


# --- 06.6 attention_after_edit ------------------------------------------------------------------------
def _edit(model, tokens, layer, head, d, s, delta, side, *, sign=1.0, every_position=False,
          hook=None, skip_weight=False, read=None, returns="A"):
    position = d if side == "d" else s
    name = hook or ("q" if side == "d" else "k")
    W = model.W_Q if name == "q" else model.W_K
    heads = [head]

    def move(activation, hook):
        out = activation.clone()
        where = slice(None) if every_position else position
        for h in heads:
            change = delta[: W.shape[-1]] if skip_weight else delta @ W[layer, h]
            out[0, where, h] = out[0, where, h] - sign * change
        return out

    seen = {}

    def keep(pattern, hook):
        seen["p"] = pattern

    hooks = [(f"blocks.{layer}.attn.hook_{name}", move)] if sign else []
    hooks.append((f"blocks.{layer}.attn.hook_{'attn_scores' if returns == 'scores' else 'pattern'}", keep))
    model.run_with_hooks(tokens[None], fwd_hooks=hooks)
    a, b = read or (d, s)
    return seen["p"][0, head, a, b].item()


def edit_adds_delta(model, tokens, layer, head, d, s, delta, side):
    return _edit(model, tokens, layer, head, d, s, delta, side, sign=-1.0)


def edit_the_residual_stream(model, tokens, layer, head, d, s, delta, side):  # moves q, k and v of every head
    position = d if side == "d" else s

    def move(resid, hook):
        out = resid.clone()
        out[0, position] -= delta
        return out

    seen = {}

    def keep(pattern, hook):
        seen["A"] = pattern[0, head, d, s].item()

    model.run_with_hooks(tokens[None], fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", move),
                                                  (f"blocks.{layer}.attn.hook_pattern", keep)])
    return seen["A"]


def edit_every_position(model, tokens, layer, head, d, s, delta, side):
    return _edit(model, tokens, layer, head, d, s, delta, side, every_position=True)


def edit_always_the_key(model, tokens, layer, head, d, s, delta, side):
    return _edit(model, tokens, layer, head, d, s, delta, side, hook="k")


def edit_without_the_weights(model, tokens, layer, head, d, s, delta, side):
    return _edit(model, tokens, layer, head, d, s, delta, side, skip_weight=True)


def edit_returns_the_clean_attention(model, tokens, layer, head, d, s, delta, side):
    return _edit(model, tokens, layer, head, d, s, delta, side, sign=0.0)


def edit_reads_the_transposed_entry(model, tokens, layer, head, d, s, delta, side):
    return _edit(model, tokens, layer, head, d, s, delta, side, read=(s, d))


def edit_returns_the_score(model, tokens, layer, head, d, s, delta, side):
    return _edit(model, tokens, layer, head, d, s, delta, side, returns="scores")


WRONG = {
    "06.1": [relative_mean_includes_s, relative_divides_by_d_plus_one, relative_future_keys_included,
             relative_transposed, relative_of_the_pattern, relative_minus_max, relative_without_the_query_itself,
             relative_raw_score],
    "06.2": [omega_biases_swapped, omega_sides_swapped, omega_scaled, omega_transposed_qk, omega_no_biases,
             omega_bias_product_appended, omega_not_augmented],
    "06.3": [terms_mean_includes_s, terms_mean_over_every_position, terms_delta_tilde_ends_in_one, terms_without_sigma,
             terms_query_bias_dropped, terms_sorted, terms_not_truncated, terms_numerical_rank, terms_sides_swapped],
    "06.4": [signal_by_absolute_value, signal_seventy_percent, signal_without_rounding, signal_strictly_above_total,
             signal_smallest_first, signal_indices_sorted, signal_negative_total_not_handled, signal_in_svd_order,
             signal_four_decimals],
    "06.5": [parts_not_scaled, parts_not_centred, parts_heads_not_split_by_source, parts_without_output_bias,
             parts_without_mlps, parts_without_position_embedding, parts_mlp_before_bias, parts_pattern_transposed,
             parts_source_major],
    "06.6": [edit_adds_delta, edit_the_residual_stream, edit_every_position, edit_always_the_key, edit_without_the_weights,
             edit_returns_the_clean_attention, edit_reads_the_transposed_entry, edit_returns_the_score],
}
