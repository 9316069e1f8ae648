"""Known-wrong implementations of the notebook 07 exercises (part A: the pointer model)."""

import torch

from utils import pointer


# --- 07.1 sample_pointer ----------------------------------------------------------------------------
def _sequences(memory, address, bits, target=None, lsb_first=False):
    digits = pointer.encode_address(address, bits)
    if lsb_first:
        digits = digits.flip(1)
    target = memory[torch.arange(len(address)), address] if target is None else target
    return torch.cat([memory, digits, target[:, None]], dim=1)


def sample_address_from_all_bit_patterns(task, n, generator=None):  # 2**A values, more than M cells
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    address = torch.randint(0, 2 ** task.address_bits, (n,), generator=generator)
    target = memory[torch.arange(n), address.clamp(max=task.memory_bits - 1)]
    return _sequences(memory, address, task.address_bits, target)


def sample_lsb_first(task, n, generator=None):
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)
    return _sequences(memory, address, task.address_bits, lsb_first=True)


def sample_target_off_by_one(task, n, generator=None):
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)
    return _sequences(memory, address, task.address_bits, memory[torch.arange(n), (address + 1) % task.memory_bits])


def sample_random_target(task, n, generator=None):
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)
    return _sequences(memory, address, task.address_bits, torch.randint(0, 2, (n,), generator=generator))


def sample_global_generator(task, n, generator=None):  # ignores the generator it is given
    memory = torch.randint(0, 2, (n, task.memory_bits))
    address = torch.randint(0, task.memory_bits, (n,))
    return _sequences(memory, address, task.address_bits)


def sample_last_cell_never(task, n, generator=None):  # randint's upper bound is exclusive
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    address = torch.randint(0, max(task.memory_bits - 1, 1), (n,), generator=generator)
    return _sequences(memory, address, task.address_bits)


def sample_one_memory_for_all_rows(task, n, generator=None):
    memory = torch.randint(0, 2, (1, task.memory_bits), generator=generator).expand(n, -1).clone()
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)
    return _sequences(memory, address, task.address_bits)


def sample_biased_memory(task, n, generator=None):
    memory = (torch.rand(n, task.memory_bits, generator=generator) < 0.3).long()
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)
    return _sequences(memory, address, task.address_bits)


def sample_reseeded(task, n, generator=None):  # a fresh generator with a fixed seed: the same rows every call
    return pointer.sample(task, n, torch.Generator().manual_seed(0))


def sample_float(task, n, generator=None):
    return pointer.sample(task, n, generator).float()


def sample_addressed_cell_set_to_one(task, n, generator=None):  # "a pointer to a set bit": every target is 1
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)
    memory[torch.arange(n), address] = 1
    return _sequences(memory, address, task.address_bits)


def sample_cyclic_addresses(task, n, generator=None):  # addresses 0, 1, 2, ... by row: uniform, but not random
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    return _sequences(memory, torch.arange(n) % task.memory_bits, task.address_bits)


def sample_alternating_targets(task, n, generator=None):  # the addressed cell set to 0, 1, 0, 1, ... by row
    memory = torch.randint(0, 2, (n, task.memory_bits), generator=generator)
    address = torch.randint(0, task.memory_bits, (n,), generator=generator)
    memory[torch.arange(n), address] = torch.arange(n) % 2
    return _sequences(memory, address, task.address_bits)


# --- 07.2 flip_test ---------------------------------------------------------------------------------
def _predict(model, inputs):
    return model(inputs)[:, -1].argmax(-1)


def flip_compared_with_target(model, task, inputs, others):  # "follows the new bit", not "changes"
    address = pointer.decode_address(inputs, task)
    rows = torch.arange(len(inputs))
    follows = (_predict(model, pointer.flip_cells(inputs, address)) == 1 - inputs[rows, address]).float().mean().item()
    changed = (_predict(model, pointer.flip_cells(inputs, others)) != inputs[rows, address]).float().mean().item()
    return follows, changed


def flip_sets_to_one(model, task, inputs, others):  # sets the cell to 1 instead of toggling it
    base, rows = _predict(model, inputs), torch.arange(len(inputs))
    shares = []
    for cells in (pointer.decode_address(inputs, task), others):
        x = inputs.clone()
        x[rows, cells] = 1
        shares.append((_predict(model, x) != base).float().mean().item())
    return tuple(shares)


def flip_swapped(model, task, inputs, others):
    base = _predict(model, inputs)
    addressed = (_predict(model, pointer.flip_cells(inputs, pointer.decode_address(inputs, task))) != base).float().mean()
    other = (_predict(model, pointer.flip_cells(inputs, others)) != base).float().mean()
    return other.item(), addressed.item()


def flip_counts(model, task, inputs, others):  # counts, not shares
    base = _predict(model, inputs)
    addressed = (_predict(model, pointer.flip_cells(inputs, pointer.decode_address(inputs, task))) != base).sum()
    other = (_predict(model, pointer.flip_cells(inputs, others)) != base).sum()
    return float(addressed), float(other)


def flip_next_cell_as_other(model, task, inputs, others):  # ignores `others`
    address = pointer.decode_address(inputs, task)
    base = _predict(model, inputs)
    addressed = (_predict(model, pointer.flip_cells(inputs, address)) != base).float().mean().item()
    nxt = (address + 1) % task.memory_bits
    return addressed, (_predict(model, pointer.flip_cells(inputs, nxt)) != base).float().mean().item()


def flip_address_read_lsb_first(model, task, inputs, others):
    digits = inputs[:, task.memory_bits: task.context].flip(1)
    address = (digits * 2 ** torch.arange(task.address_bits - 1, -1, -1)).sum(1) % task.memory_bits
    base = _predict(model, inputs)
    addressed = (_predict(model, pointer.flip_cells(inputs, address)) != base).float().mean().item()
    return addressed, (_predict(model, pointer.flip_cells(inputs, others)) != base).float().mean().item()


def flip_first_position_prediction(model, task, inputs, others):
    def first(x):
        return model(x)[:, 0].argmax(-1)

    base = first(inputs)
    addressed = (first(pointer.flip_cells(inputs, pointer.decode_address(inputs, task))) != base).float().mean().item()
    return addressed, (first(pointer.flip_cells(inputs, others)) != base).float().mean().item()


def flip_other_is_any_cell(model, task, inputs, others):  # flips every other cell at once
    address = pointer.decode_address(inputs, task)
    base = _predict(model, inputs)
    addressed = (_predict(model, pointer.flip_cells(inputs, address)) != base).float().mean().item()
    everything = inputs.clone()
    everything[:, : task.memory_bits] = 1 - everything[:, : task.memory_bits]
    everything = pointer.flip_cells(everything, address)
    return addressed, (_predict(model, everything) != base).float().mean().item()


# --- 07.3 addressed_attention -----------------------------------------------------------------------
def _patterns(model, inputs):
    _, cache = model.run_with_cache(inputs, names_filter=lambda name: name.endswith("hook_pattern"))
    return torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)], dim=1)  # [n, layer, head, q, k]


def attention_first_query(model, task, inputs):
    rows = torch.arange(len(inputs))
    return _patterns(model, inputs)[rows, :, :, 0, pointer.decode_address(inputs, task)].permute(0, 1, 2)


def attention_transposed(model, task, inputs):  # query = the cell, key = the readout: 0 by the causal mask
    p = _patterns(model, inputs)
    rows, address = torch.arange(len(inputs)), pointer.decode_address(inputs, task)
    return torch.stack([p[i, :, :, address[i], -1] for i in rows])


def attention_lsb_first(model, task, inputs):
    digits = inputs[:, task.memory_bits: task.context].flip(1)
    address = (digits * 2 ** torch.arange(task.address_bits - 1, -1, -1)).sum(1) % task.memory_bits
    p = _patterns(model, inputs)
    return torch.stack([p[i, :, :, -1, address[i]] for i in range(len(inputs))])


def attention_heads_averaged(model, task, inputs):
    p = _patterns(model, inputs)
    address = pointer.decode_address(inputs, task)
    got = torch.stack([p[i, :, :, -1, address[i]] for i in range(len(inputs))])
    return got.mean(-1, keepdim=True).expand_as(got)


def attention_next_key(model, task, inputs):  # off by one
    p = _patterns(model, inputs)
    address = pointer.decode_address(inputs, task) + 1
    return torch.stack([p[i, :, :, -1, address[i]] for i in range(len(inputs))])


def attention_layers_reversed(model, task, inputs):
    p = _patterns(model, inputs).flip(1)
    address = pointer.decode_address(inputs, task)
    return torch.stack([p[i, :, :, -1, address[i]] for i in range(len(inputs))])


def attention_on_the_address_bits(model, task, inputs):  # the key is the first address bit, not the cell
    p = _patterns(model, inputs)
    return p[:, :, :, -1, task.memory_bits]


def attention_mean_over_rows(model, task, inputs):
    p = _patterns(model, inputs)
    address = pointer.decode_address(inputs, task)
    got = torch.stack([p[i, :, :, -1, address[i]] for i in range(len(inputs))])
    return got.mean(0, keepdim=True).expand_as(got)


# --- 07.4 patching_recovery -------------------------------------------------------------------------
def _recovery(model, task, inputs, *, noising=False, flip=None, metric="margin", points=None, span=False,
              normalise=True):
    n, T = inputs.shape
    rows = torch.arange(n)
    cell = pointer.decode_address(inputs, task)
    flipped = pointer.flip_cells(inputs, cell if flip is None else flip(cell, task))
    answer = inputs[rows, cell]
    points = points or pointer.residual_points(model)

    def score(logits):
        last = logits[:, -1]
        if metric == "probability":
            return last.softmax(-1)[rows, answer]
        return last[rows, answer] - last[rows, 1 - answer]

    source, target = (flipped, inputs) if noising else (inputs, flipped)
    _, cache = model.run_with_cache(source, names_filter=lambda name: name in points)
    clean, corrupted = score(model(inputs)), score(model(flipped))
    out = torch.zeros(n, len(points), T)
    for i, point in enumerate(points):
        for position in range(T):
            def hook(resid, hook, point=point, position=position):
                resid = resid.clone()
                where = slice(position, None) if span else slice(position, position + 1)
                resid[:, where] = cache[point][:, where]
                return resid

            patched = score(model.run_with_hooks(target, fwd_hooks=[(point, hook)]))
            scale = {True: clean - corrupted, "clean": clean, False: 1.0, "abs": (clean - corrupted).abs()}[normalise]
            out[:, i, position] = (patched - corrupted) / scale
    return out


def recovery_noising(model, task, inputs):
    return _recovery(model, task, inputs, noising=True)


def recovery_probability(model, task, inputs):
    return _recovery(model, task, inputs, metric="probability")


def recovery_flips_next_cell(model, task, inputs):
    return _recovery(model, task, inputs, flip=lambda cell, task: (cell + 1) % task.memory_bits)


def recovery_patches_suffix(model, task, inputs):  # every position from p on, not p alone
    return _recovery(model, task, inputs, span=True)


def recovery_points_are_block_inputs(model, task, inputs):  # misses the last block's output
    points = [f"blocks.{layer}.hook_in" for layer in range(model.cfg.n_layers)] + [f"blocks.{model.cfg.n_layers - 1}.hook_in"]
    return _recovery(model, task, inputs, points=points)


def recovery_over_clean_margin(model, task, inputs):  # divided by D_clean, not D_clean - D_corr
    return _recovery(model, task, inputs, normalise="clean")


def recovery_unnormalised(model, task, inputs):
    return _recovery(model, task, inputs, normalise=False)


def recovery_over_the_absolute_gap(model, task, inputs):  # |D_clean - D_flipped|: a negative gap flips every sign
    return _recovery(model, task, inputs, normalise="abs")


# --- 07.5 value_weighted_attention ------------------------------------------------------------------
def _sent(v, W_O):
    return torch.einsum("bkhd,hdm->bhkm", v, W_O)  # [batch, head, key, d_model]


def vw_norm_of_v_only(pattern, v, W_O):
    return pattern * v.norm(dim=-1).transpose(1, 2).unsqueeze(2)


def vw_squared_norm(pattern, v, W_O):
    return pattern * (_sent(v, W_O) ** 2).sum(-1).unsqueeze(2)


def vw_renormalised(pattern, v, W_O):
    weighted = pattern * _sent(v, W_O).norm(dim=-1).unsqueeze(2)
    return weighted / weighted.sum(-1, keepdim=True)


def vw_query_norms(pattern, v, W_O):  # the query position's value, not the key's
    return pattern * _sent(v, W_O).norm(dim=-1).unsqueeze(3)


def vw_heads_mixed(pattern, v, W_O):
    mixed = torch.einsum("bkhd,hdm->bkm", v, W_O).norm(dim=-1)  # [batch, key]
    return pattern * mixed[:, None, None, :]


def vw_l1_norm(pattern, v, W_O):
    return pattern * _sent(v, W_O).abs().sum(-1).unsqueeze(2)


def vw_pattern_only(pattern, v, W_O):
    return pattern.clone()


# --- 07.6 resample_ablation -------------------------------------------------------------------------
def _resampled(model, tokens, heads, *, source=lambda z: z.roll(1, 0), positions=slice(None), whole_layer=False,
               all_positions_out=False):
    _, own = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    hooks = []
    for layer in sorted({l for l, _ in heads}):
        name = f"blocks.{layer}.attn.hook_z"
        chosen = list(range(model.cfg.n_heads)) if whole_layer else [h for l, h in heads if l == layer]

        def hook(z, hook, name=name, chosen=chosen):
            z = z.clone()
            replacement = source(own[name])
            for head in chosen:
                z[:, positions, head] = replacement[:, positions, head]
            return z
        hooks.append((name, hook))
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits if all_positions_out else logits[:, -1]


def resample_zeroed(model, tokens, heads):
    return _resampled(model, tokens, heads, source=torch.zeros_like)


def resample_batch_mean(model, tokens, heads):
    return _resampled(model, tokens, heads, source=lambda z: z.mean(0, keepdim=True).expand_as(z))


def resample_next_prompt(model, tokens, heads):
    return _resampled(model, tokens, heads, source=lambda z: z.roll(-1, 0))


def resample_last_position_only(model, tokens, heads):
    return _resampled(model, tokens, heads, positions=slice(-1, None))


def resample_first_head_only(model, tokens, heads):
    return _resampled(model, tokens, heads[:1])


def resample_every_position_logits(model, tokens, heads):
    return _resampled(model, tokens, heads, all_positions_out=True)


def resample_whole_layer(model, tokens, heads):
    return _resampled(model, tokens, heads, whole_layer=True)


WRONG = {
    "07.1": [sample_address_from_all_bit_patterns, sample_lsb_first, sample_target_off_by_one, sample_random_target,
             sample_global_generator, sample_last_cell_never, sample_one_memory_for_all_rows, sample_biased_memory,
             sample_reseeded, sample_float, sample_addressed_cell_set_to_one, sample_cyclic_addresses,
             sample_alternating_targets],
    "07.2": [flip_compared_with_target, flip_sets_to_one, flip_swapped, flip_counts, flip_next_cell_as_other,
             flip_address_read_lsb_first, flip_first_position_prediction, flip_other_is_any_cell],
    "07.3": [attention_first_query, attention_transposed, attention_lsb_first, attention_heads_averaged,
             attention_next_key, attention_layers_reversed, attention_on_the_address_bits, attention_mean_over_rows],
    "07.4": [recovery_noising, recovery_probability, recovery_flips_next_cell, recovery_patches_suffix,
             recovery_points_are_block_inputs, recovery_over_clean_margin, recovery_unnormalised,
             recovery_over_the_absolute_gap],
    "07.5": [vw_norm_of_v_only, vw_squared_norm, vw_renormalised, vw_query_norms, vw_heads_mixed, vw_l1_norm,
             vw_pattern_only],
    "07.6": [resample_zeroed, resample_batch_mean, resample_next_prompt, resample_last_position_only,
             resample_first_head_only, resample_every_position_logits, resample_whole_layer],
}
