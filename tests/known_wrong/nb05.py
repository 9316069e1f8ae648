"""Known-wrong implementations of the notebook 05 exercises."""

import torch


# --- 05.1 subject_noise_std -------------------------------------------------------------------------
def _subject_ids(model, subjects, bos=False):
    return torch.cat([model.to_tokens(s, prepend_bos=bos)[0] for s in subjects])


def std_with_bos(model, subjects):
    return model.W_E[_subject_ids(model, subjects, bos=True)].std().item()


def std_times_three(model, subjects):
    return 3 * model.W_E[_subject_ids(model, subjects)].std().item()


def std_whole_matrix(model, subjects):
    return model.W_E.std().item()


def std_unique_tokens(model, subjects):  # repeats must count
    return model.W_E[_subject_ids(model, subjects).unique()].std().item()


def std_per_dimension_mean(model, subjects):
    return model.W_E[_subject_ids(model, subjects)].std(0).mean().item()


def std_with_positions(model, subjects):  # position embeddings are not part of ROME's level
    ids = _subject_ids(model, subjects)
    return (model.W_E[ids] + model.W_pos[: len(ids)]).std().item()


def std_population(model, subjects):  # divided by N: 1e-4 off with thousands of coordinates, the text asks N - 1
    return model.W_E[_subject_ids(model, subjects)].std(correction=0).item()


def std_subjects_joined(model, subjects):  # one tokenization of them all: cut at the model's context length
    return model.W_E[model.to_tokens(" ".join(subjects), prepend_bos=False)[0]].std().item()


def std_first_subject_only(model, subjects):
    return model.W_E[_subject_ids(model, subjects[:1])].std().item()


# --- 05.2 restored_probability ----------------------------------------------------------------------
def _restored(model, tokens, span, answer, noise, restore, *, add=True, where=None, rows_from=0, include_clean=False,
              output="p", restore_all=False, clean_source=True):
    start, end = where or span
    batch = tokens.expand(1 + len(noise), -1)

    def corrupt(embed, hook):
        embed = embed.clone()
        piece = noise.to(embed.dtype)
        if end - start != piece.shape[1]:
            piece = piece.mean(1, keepdim=True).expand(-1, end - start, -1)
        embed[1:, start:end] = embed[1:, start:end] + piece if add else piece
        return embed

    def restore_hook(position):
        def hook(act, hook):
            act = act.clone()
            source = act[0] if clean_source else act[1]
            if restore_all:
                act[1:] = source
            else:
                act[1:, position] = source[position]
            return act
        return hook

    hooks = [("hook_embed", corrupt)] + [(name, restore_hook(pos)) for name, pos in restore]
    logits = model.run_with_hooks(batch, fwd_hooks=hooks)[:, -1]
    rows = logits if include_clean else logits[1:]
    if output == "logit":
        return rows[:, answer].mean().item()
    if output == "argmax":
        return rows.softmax(-1).max(-1).values.mean().item()
    return rows.softmax(-1)[:, answer].mean().item()


def restore_sites_keyed_by_hook(model, tokens, span, answer, noise, restore=()):  # dict(restore): one position per hook
    return _restored(model, tokens, span, answer, noise, list(dict(restore).items()))


def restore_noise_replaces(model, tokens, span, answer, noise, restore=()):  # ROME's --replace, not the default
    return _restored(model, tokens, span, answer, noise, restore, add=False)


def restore_includes_clean_row(model, tokens, span, answer, noise, restore=()):
    return _restored(model, tokens, span, answer, noise, restore, include_clean=True)


def restore_logits(model, tokens, span, answer, noise, restore=()):
    return _restored(model, tokens, span, answer, noise, restore, output="logit")


def restore_top_probability(model, tokens, span, answer, noise, restore=()):
    return _restored(model, tokens, span, answer, noise, restore, output="argmax")


def restore_span_off_by_one(model, tokens, span, answer, noise, restore=()):  # noise one token later
    return _restored(model, tokens, span, answer, noise, restore, where=(span[0] + 1, span[1] + 1))


def restore_every_position(model, tokens, span, answer, noise, restore=()):
    return _restored(model, tokens, span, answer, noise, restore, restore_all=True)


def restore_from_corrupted_row(model, tokens, span, answer, noise, restore=()):
    return _restored(model, tokens, span, answer, noise, restore, clean_source=False)


def restore_noise_everywhere(model, tokens, span, answer, noise, restore=()):  # every position gets noise
    return _restored(model, tokens, span, answer, noise, restore, where=(0, len(tokens)))


# --- 05.3 window_layers -----------------------------------------------------------------------------
def window_unclipped(layer, window, n_layers):
    return list(range(layer - window // 2, layer - window // 2 + window))


def window_starts_at_layer(layer, window, n_layers):
    return [l for l in range(layer, layer + window) if l < n_layers]


def window_ends_at_layer(layer, window, n_layers):
    return [l for l in range(layer - window + 1, layer + 1) if l >= 0]


def window_one_too_wide(layer, window, n_layers):
    return [l for l in range(layer - window // 2, layer - window // 2 + window + 1) if 0 <= l < n_layers]


def window_rounds_half_up(layer, window, n_layers):  # even windows centred the other way
    start = layer - (window - 1) // 2
    return [l for l in range(start, start + window) if 0 <= l < n_layers]


def window_as_range(layer, window, n_layers):
    start = layer - window // 2
    return range(max(0, start), min(n_layers, start + window))


def window_clip_shifts(layer, window, n_layers):  # keeps the width by sliding the window at the edges
    start = min(max(0, layer - window // 2), max(0, n_layers - window))
    return list(range(start, min(n_layers, start + window)))


# --- 05.4 effects_by_class --------------------------------------------------------------------------
def _by_class(scores, span, low, high, *, normalise=True, last_in_further=False, one_token_first=False,
              middle_with_ends=False, keep_empty=False, divide_by_high=False):
    start, end = span
    last = scores.shape[0] - 1
    if divide_by_high:
        fraction = (scores - low) / high
    else:
        fraction = (scores - low) / (high - low) if normalise else scores
    first = [start] if (end - start > 1 or one_token_first) else []
    middle = list(range(start, end)) if middle_with_ends else list(range(start + 1, end - 1))
    positions = {"first subject": first, "middle subject": middle, "last subject": [end - 1],
                 "first subsequent": [end] if end < last else [],
                 "further": list(range(end + 1, last + 1 if last_in_further else last)), "last": [last]}
    out = {}
    for name, where in positions.items():
        if where:
            out[name] = fraction[where].mean(0)
        elif keep_empty:
            out[name] = torch.zeros(scores.shape[1])
    return out


def classes_unnormalised(scores, span, low, high):
    return _by_class(scores, span, low, high, normalise=False)


def classes_last_in_further(scores, span, low, high):
    return _by_class(scores, span, low, high, last_in_further=True)


def classes_one_token_subject_is_first(scores, span, low, high):
    return _by_class(scores, span, low, high, one_token_first=True)


def classes_middle_includes_ends(scores, span, low, high):
    return _by_class(scores, span, low, high, middle_with_ends=True)


def classes_empty_as_zero(scores, span, low, high):
    return _by_class(scores, span, low, high, keep_empty=True)


def classes_divided_by_high(scores, span, low, high):
    return _by_class(scores, span, low, high, divide_by_high=True)


def classes_summed(scores, span, low, high):  # pools middle and further tokens by sum, not mean
    out = _by_class(scores, span, low, high)
    start, end = span
    last = scores.shape[0] - 1
    fraction = (scores - low) / (high - low)
    for name, where in (("middle subject", range(start + 1, end - 1)), ("further", range(end + 1, last))):
        if name in out:
            out[name] = fraction[list(where)].sum(0)
    return out


# --- 05.5 patch_run ---------------------------------------------------------------------------------
def _patched(model, source, target, sites, *, swap=False, every_position=False, last_position=False,
             output="logits", from_target=False):
    if swap:
        source, target = target, source
    names = {name for name, _ in sites}
    _, cache = model.run_with_cache((target if from_target else source)[None], names_filter=lambda n: n in names)

    def put(name, position):
        def hook(act, hook):
            act = act.clone()
            if every_position:
                act[:] = cache[name]
            else:
                where = -1 if last_position else position
                act[:, where] = cache[name][:, where]
            return act
        return hook

    logits = model.run_with_hooks(target[None], fwd_hooks=[(n, put(n, p)) for n, p in sites])
    if output == "probs":
        return logits[0, -1].softmax(-1)
    if output == "all":
        return logits[0]
    return logits[0, -1]


def patch_sites_keyed_by_hook(model, source, target, sites):  # dict(sites): the last position per hook wins
    return _patched(model, source, target, list(dict(sites).items()))


def patch_swapped_roles(model, source, target, sites):
    return _patched(model, source, target, sites, swap=True)


def patch_every_position(model, source, target, sites):
    return _patched(model, source, target, sites, every_position=True)


def patch_last_position_only(model, source, target, sites):
    return _patched(model, source, target, sites, last_position=True)


def patch_probabilities(model, source, target, sites):
    return _patched(model, source, target, sites, output="probs")


def patch_every_position_logits(model, source, target, sites):
    return _patched(model, source, target, sites, output="all")


def patch_from_target(model, source, target, sites):  # a no-op: the cache is the target's own
    return _patched(model, source, target, sites, from_target=True)


def patch_first_site_only(model, source, target, sites):
    return _patched(model, source, target, sites[:1])


# --- 05.6 patch_head --------------------------------------------------------------------------------
def _run_with_z(model, tokens, layer, edit):
    name = f"blocks.{layer}.attn.hook_z"
    return model.run_with_hooks(tokens, fwd_hooks=[(name, lambda z, hook: edit(z.clone(), name))])


def head_whole_layer(model, corrupted, cache, layer, head):
    def edit(z, name):
        z[:] = cache[name]
        return z
    return _run_with_z(model, corrupted, layer, edit)[:, -1]


def head_last_position_only(model, corrupted, cache, layer, head):
    def edit(z, name):
        z[:, -1, head] = cache[name][:, -1, head]
        return z
    return _run_with_z(model, corrupted, layer, edit)[:, -1]


def head_zero_ablated(model, corrupted, cache, layer, head):
    def edit(z, name):
        z[:, :, head] = 0.0
        return z
    return _run_with_z(model, corrupted, layer, edit)[:, -1]


def head_position_axis(model, corrupted, cache, layer, head):  # indexes positions, not heads
    def edit(z, name):
        z[:, head] = cache[name][:, head]
        return z
    return _run_with_z(model, corrupted, layer, edit)[:, -1]


def head_batch_mean(model, corrupted, cache, layer, head):
    def edit(z, name):
        z[:, :, head] = cache[name][:, :, head].mean(0, keepdim=True)
        return z
    return _run_with_z(model, corrupted, layer, edit)[:, -1]


def head_every_position_logits(model, corrupted, cache, layer, head):
    def edit(z, name):
        z[:, :, head] = cache[name][:, :, head]
        return z
    return _run_with_z(model, corrupted, layer, edit)


def head_probabilities(model, corrupted, cache, layer, head):
    def edit(z, name):
        z[:, :, head] = cache[name][:, :, head]
        return z
    return _run_with_z(model, corrupted, layer, edit)[:, -1].softmax(-1)


def head_next_layer(model, corrupted, cache, layer, head):
    target = min(layer + 1, model.cfg.n_layers - 1)
    name = f"blocks.{target}.attn.hook_z"

    def edit(z, hook):
        z = z.clone()
        z[:, :, head] = cache[name][:, :, head]
        return z
    return model.run_with_hooks(corrupted, fwd_hooks=[(name, edit)])[:, -1] if target != layer else \
        model(corrupted)[:, -1]


# --- 05.7 head_direct_effects -----------------------------------------------------------------------
def _written(model, cache, layer, position=-1, bias=False):
    z = cache[f"blocks.{layer}.attn.hook_z"][:, position]  # [batch, head, d_head]
    out = torch.einsum("bhd,hdm->hbm", z, model.W_O[layer])
    return out + model.blocks[layer].attn.b_O / model.cfg.n_heads if bias else out


def _dla(model, cache, io, s, *, scale_power=-1, position=-1, bias=False, minus_s=True, scale_position=-1):
    direction = model.W_U[:, io] - (model.W_U[:, s] if minus_s else 0)
    scale = cache["ln_final.hook_scale"][:, scale_position, 0]
    return torch.stack([(_written(model, cache, l, position, bias) * direction.T).sum(-1) * scale ** scale_power
                        for l in range(model.cfg.n_layers)])


def dla_stack_head_results(model, cache, io, s):  # right numbers, but the helper stores hook_result in `cache`
    heads = cache.stack_head_results(layer=-1, pos_slice=-1)  # [layer * head, batch, d_model]
    direction = (model.W_U[:, io] - model.W_U[:, s]).T  # [batch, d_model]
    effects = (heads * direction).sum(-1) / cache["ln_final.hook_scale"][:, -1, 0]
    return effects.reshape(model.cfg.n_layers, model.cfg.n_heads, -1)


def dla_no_scale(model, cache, io, s):
    return _dla(model, cache, io, s, scale_power=0)


def dla_times_scale(model, cache, io, s):
    return _dla(model, cache, io, s, scale_power=1)


def dla_with_bias(model, cache, io, s):
    return _dla(model, cache, io, s, bias=True)


def dla_first_position(model, cache, io, s):
    return _dla(model, cache, io, s, position=0)


def dla_io_only(model, cache, io, s):
    return _dla(model, cache, io, s, minus_s=False)


def dla_scale_at_first_position(model, cache, io, s):
    return _dla(model, cache, io, s, scale_position=0)


def dla_swapped_axes(model, cache, io, s):
    return _dla(model, cache, io, s).transpose(0, 1)


def dla_layer_output(model, cache, io, s):  # the whole attention output, split evenly over heads
    per_layer = _dla(model, cache, io, s).sum(1, keepdim=True)
    return per_layer.expand(-1, model.cfg.n_heads, -1) / model.cfg.n_heads


# --- 05.8 head_attribution --------------------------------------------------------------------------
def _attribution(model, clean, corrupted, io, s, *, grad_in="corrupted", step=1, reduce="mean", use_step=True,
                 use_grad=True, last_only=False, absolute=False):
    names = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)]
    _, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in names)
    _, corrupted_cache = model.run_with_cache(corrupted, names_filter=lambda n: n in names)
    kept = []

    def keep(z, hook):
        z.retain_grad()
        kept.append(z)
        return z

    with torch.enable_grad():
        logits = model.run_with_hooks(corrupted if grad_in == "corrupted" else clean, fwd_hooks=[(n, keep) for n in names])
        diff = logits[:, -1].gather(-1, io[:, None])[:, 0] - logits[:, -1].gather(-1, s[:, None])[:, 0]
        (diff.mean() if reduce == "mean" else diff.sum()).backward()
    rows = []
    for z, name in zip(kept, names):
        delta = step * (clean_cache[name] - corrupted_cache[name]) if use_step else torch.ones_like(z)
        term = delta * (z.grad if use_grad else 1.0)
        term = term[:, -1:] if last_only else term
        rows.append((term.abs() if absolute else term).sum((0, 1, 3)).detach())
    return torch.stack(rows)


def attribution_gradient_in_clean_run(model, clean, corrupted, io, s):
    return _attribution(model, clean, corrupted, io, s, grad_in="clean")


def attribution_sign_flipped(model, clean, corrupted, io, s):
    return _attribution(model, clean, corrupted, io, s, step=-1)


def attribution_summed_over_prompts(model, clean, corrupted, io, s):
    return _attribution(model, clean, corrupted, io, s, reduce="sum")


def attribution_gradient_only(model, clean, corrupted, io, s):
    return _attribution(model, clean, corrupted, io, s, use_step=False)


def attribution_step_only(model, clean, corrupted, io, s):
    return _attribution(model, clean, corrupted, io, s, use_grad=False)


def attribution_last_position(model, clean, corrupted, io, s):
    return _attribution(model, clean, corrupted, io, s, last_only=True)


def attribution_absolute(model, clean, corrupted, io, s):
    return _attribution(model, clean, corrupted, io, s, absolute=True)


WRONG = {
    "05.1": [std_population, std_subjects_joined, std_with_bos, std_times_three, std_whole_matrix, std_unique_tokens, std_per_dimension_mean,
             std_with_positions, std_first_subject_only],
    "05.2": [restore_sites_keyed_by_hook, restore_noise_replaces, restore_includes_clean_row, restore_logits, restore_top_probability,
             restore_span_off_by_one, restore_every_position, restore_from_corrupted_row, restore_noise_everywhere],
    "05.3": [window_unclipped, window_starts_at_layer, window_ends_at_layer, window_one_too_wide,
             window_rounds_half_up, window_as_range, window_clip_shifts],
    "05.4": [classes_unnormalised, classes_last_in_further, classes_one_token_subject_is_first,
             classes_middle_includes_ends, classes_empty_as_zero, classes_divided_by_high, classes_summed],
    "05.5": [patch_sites_keyed_by_hook, patch_swapped_roles, patch_every_position, patch_last_position_only, patch_probabilities,
             patch_every_position_logits, patch_from_target, patch_first_site_only],
    "05.6": [head_whole_layer, head_last_position_only, head_zero_ablated, head_position_axis, head_batch_mean,
             head_every_position_logits, head_probabilities, head_next_layer],
    "05.7": [dla_stack_head_results, dla_no_scale, dla_times_scale, dla_with_bias, dla_first_position, dla_io_only,
             dla_scale_at_first_position, dla_swapped_axes, dla_layer_output],
    "05.8": [attribution_gradient_in_clean_run, attribution_sign_flipped, attribution_summed_over_prompts,
             attribution_gradient_only, attribution_step_only, attribution_last_position, attribution_absolute],
}
