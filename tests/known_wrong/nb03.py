"""Known-wrong implementations of the notebook 03 exercises."""

import torch

from utils.checking import exercises, reference_function


# --- 03.1 repeated_tokens ---------------------------------------------------------------------------
def _rows(bos, vocab, batch, length, r):
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1)


def repeated_without_bos(bos, vocab, batch, length, generator):
    r = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    return torch.cat([r, r], dim=1)  # also the wrong shape


def repeated_two_independent_halves(bos, vocab, batch, length, generator):
    first = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    second = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    return torch.cat([torch.full((batch, 1), bos), first, second], dim=1)


def repeated_raw_indices(bos, vocab, batch, length, generator):  # indices into vocab, not ids
    return _rows(bos, vocab, batch, length, torch.randint(0, len(vocab), (batch, length), generator=generator))


def repeated_same_row_everywhere(bos, vocab, batch, length, generator):
    r = vocab[torch.randint(0, len(vocab), (1, length), generator=generator)].expand(batch, length)
    return _rows(bos, vocab, batch, length, r)


def repeated_float_tokens(bos, vocab, batch, length, generator):
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]).float()


def repeated_ignores_the_generator(bos, vocab, batch, length, generator):  # the global random state instead
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, len(vocab), (batch, length))])


def repeated_reseeds_the_generator(bos, vocab, batch, length, generator):  # every seed gives the same rows
    generator.manual_seed(0)
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)])


def repeated_seeds_the_global_state(bos, vocab, batch, length, generator):  # reproducible, but never advances
    torch.manual_seed(generator.initial_seed())
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, len(vocab), (batch, length))])


def repeated_never_draws_the_last_id(bos, vocab, batch, length, generator):  # randint's bound is already exclusive
    top = max(len(vocab) - 1, 1)
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, top, (batch, length), generator=generator)])


def repeated_sorted_rows(bos, vocab, batch, length, generator):
    r = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    return _rows(bos, vocab, batch, length, r.sort(dim=-1).values)


def repeated_skewed_draw(bos, vocab, batch, length, generator):  # low indices are more likely
    picks = (torch.rand(batch, length, generator=generator) ** 2 * len(vocab)).long()
    return _rows(bos, vocab, batch, length, vocab[picks])


def repeated_shuffles_vocab_in_place(bos, vocab, batch, length, generator):  # a permutation written into the caller's vocab
    vocab[:] = vocab[torch.randperm(len(vocab), generator=generator)]
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)])


def repeated_consecutive_window(bos, vocab, batch, length, generator):  # only the start is random: a run of vocab entries
    start = torch.randint(0, len(vocab), (batch, 1), generator=generator)
    return _rows(bos, vocab, batch, length, vocab[(start + torch.arange(length)) % len(vocab)])


def repeated_first_50_ids_only(bos, vocab, batch, length, generator):  # a fixed bound on the index
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, min(len(vocab), 50), (batch, length), generator=generator)])


def repeated_randint_mod_100(bos, vocab, batch, length, generator):  # indices 0..99 folded into vocab: biased, ids past 100 never
    return _rows(bos, vocab, batch, length, vocab[torch.randint(0, 100, (batch, length), generator=generator) % len(vocab)])


def repeated_each_draw_twice(bos, vocab, batch, length, generator):  # every token repeated at once: r[2i] == r[2i + 1]
    picks = torch.randint(0, len(vocab), (batch, (length + 1) // 2), generator=generator)
    return _rows(bos, vocab, batch, length, vocab[picks.repeat_interleave(2, dim=1)[:, :length]])


# --- 03.2 induction_score ---------------------------------------------------------------------------
def induction_off_by_one(pattern, half):  # the repeated token itself, not the one after it
    return pattern.diagonal(offset=-half, dim1=-2, dim2=-1)[..., -half:].mean(dim=(0, -1))


def induction_whole_diagonal(pattern, half):  # includes first-copy queries
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1).mean(dim=(0, -1))


def induction_keeps_batch(pattern, half):  # wrong axis: averages over heads instead of the batch
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1)[..., -half:].mean(dim=(1, -1))


def induction_sum_not_mean(pattern, half):
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1)[..., -half:].sum(-1).mean(0)


def induction_first_copy_queries(pattern, half):  # the first `half` entries of the stripe
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1)[..., :half].mean(dim=(0, -1))


def induction_of_the_transpose(pattern, half):  # reads the pattern as [key, query]
    return pattern.transpose(-1, -2).diagonal(offset=1 - half, dim1=-2, dim2=-1)[..., -half:].mean(dim=(0, -1))


def induction_per_sample(pattern, half):
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1)[..., -half:].mean(dim=-1)


# --- 03.3 previous_token_score ----------------------------------------------------------------------
def previous_is_self(pattern):  # the diagonal, not the one below it
    return pattern.diagonal(offset=0, dim1=-2, dim2=-1).mean(dim=(0, -1))


def previous_is_next(pattern):  # above the diagonal: always 0 under a causal mask
    return pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def previous_over_all_rows(pattern):  # divides by pos instead of pos - 1
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0) / pattern.shape[-1]


def previous_two_back(pattern):
    return pattern.diagonal(offset=-2, dim1=-2, dim2=-1).mean(dim=(0, -1))


def previous_keeps_batch(pattern):
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1)


def previous_averaged_over_heads(pattern):
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1))


def previous_drops_bos_in_place(pattern):  # ignores attention to BOS by zeroing the caller's column 0
    pattern[..., 0] = 0.0
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


# --- 03.4 composition_score -------------------------------------------------------------------------
def _frobenius(matrix):
    return torch.linalg.matrix_norm(matrix)


def composition_unnormalised(W_A, W_B):
    return _frobenius(W_A @ W_B).item()


def composition_spectral_norms(W_A, W_B):
    return (torch.linalg.matrix_norm(W_A @ W_B, ord=2)
            / (torch.linalg.matrix_norm(W_A, ord=2) * torch.linalg.matrix_norm(W_B, ord=2))).item()


def composition_reversed_product(W_A, W_B):
    return (_frobenius(W_B @ W_A) / (_frobenius(W_A) * _frobenius(W_B))).item()


def composition_elementwise(W_A, W_B):
    return (_frobenius(W_A * W_B) / (_frobenius(W_A) * _frobenius(W_B))).item()


def composition_transposed_W_A(W_A, W_B):
    return (_frobenius(W_A.T @ W_B) / (_frobenius(W_A) * _frobenius(W_B))).item()


def composition_squared_norms(W_A, W_B):
    return (_frobenius(W_A @ W_B) ** 2 / (_frobenius(W_A) ** 2 * _frobenius(W_B) ** 2)).item()


def composition_normalises_in_place(W_A, W_B):  # right value, but the caller's matrices are rescaled
    W_A /= _frobenius(W_A)
    W_B /= _frobenius(W_B)
    return _frobenius(W_A @ W_B).item()


class _LyingFloat(float):
    """A float whose every comparison and difference says "close enough"."""

    def __sub__(self, other):
        return 0.0

    def __rsub__(self, other):
        return 0.0

    def __abs__(self):
        return 0.0

    def __eq__(self, other):
        return True

    def __le__(self, other):
        return True

    def __ge__(self, other):
        return True

    __hash__ = float.__hash__


def composition_lying_float(W_A, W_B):  # an adversarial return value
    return _LyingFloat(0.5)


# --- 03.5 ablated_scores ----------------------------------------------------------------------------
def _ablated(model, tokens, layer, head, zero, loss_slice, layers=None):
    half = (tokens.shape[1] - 1) // 2
    induction = reference_function(exercises()["03.2"])

    def hook(z, hook):
        zero(z, head)
        return z

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)]):
        logits, cache = model.run_with_cache(tokens)
    scores = torch.stack([induction(cache["pattern", l], half) for l in range(layers or model.cfg.n_layers)])
    losses = -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return scores, losses[:, loss_slice(half)].mean().item()


def _second_copy(half):
    return slice(half + 1, None)


def ablation_scores_a_position(model, tokens, layer, head):  # wrong axis
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, h].zero_(), _second_copy)


def ablation_of_the_whole_layer(model, tokens, layer, head):
    return _ablated(model, tokens, layer, head, lambda z, h: z.zero_(), _second_copy)


def ablation_loss_over_everything(model, tokens, layer, head):  # not just the second copy
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), lambda half: slice(None))


def ablation_loss_from_the_first_copy(model, tokens, layer, head):
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), lambda half: slice(1, half))


def ablation_hard_coded_two_layers(model, tokens, layer, head):  # attn-only-2l's depth written in
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), _second_copy, layers=2)


def ablation_loss_one_position_late(model, tokens, layer, head):  # off by one: the second copy starts at half + 1
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), lambda half: slice(half + 2, None))


def ablation_permanent_hook(model, tokens, layer, head):  # right outputs, but the hook stays on the model
    model.add_hook(f"blocks.{layer}.attn.hook_z", lambda z, hook: z.index_fill(2, torch.tensor([head]), 0.0),
                   is_permanent=True)
    return _ablated(model, tokens, layer, head, lambda z, h: None, _second_copy)


# --- 03.6 copying_score -----------------------------------------------------------------------------
def copying_abs_numerator(eigenvalues):  # always 1
    return eigenvalues.sum(-1).abs() / eigenvalues.abs().sum(-1)


def copying_real_parts_only(eigenvalues):
    return eigenvalues.real.sum(-1) / eigenvalues.real.abs().sum(-1)


def copying_over_the_wrong_axis(eigenvalues):
    return eigenvalues.sum(0).real / eigenvalues.abs().sum(0)


def copying_imaginary_part(eigenvalues):
    return eigenvalues.sum(-1).imag / eigenvalues.abs().sum(-1)


def copying_complex_result(eigenvalues):  # forgot .real: a complex tensor
    return eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)


def copying_modulus_of_the_sum_below(eigenvalues):  # |sum| in the denominator instead of sum of |.|
    return eigenvalues.sum(-1).real / eigenvalues.sum(-1).abs()


def copying_flattens_the_batch(eigenvalues):  # one score for everything
    return eigenvalues.flatten().sum().real / eigenvalues.abs().sum()


# --- 03.7 icl_score ---------------------------------------------------------------------------------
def icl_reversed(losses, early, late):
    return (losses[:, early.start:early.stop].mean() - losses[:, late.start:late.stop].mean()).item()


def icl_inclusive_stop(losses, early, late):  # off by one: includes the stop positions
    return (losses[:, late.start:late.stop + 1].mean() - losses[:, early.start:early.stop + 1].mean()).item()


def icl_single_positions(losses, early, late):
    return (losses[:, late.start].mean() - losses[:, early.start].mean()).item()


def icl_late_runs_to_the_end(losses, early, late):  # ignores late.stop
    return (losses[:, late.start:].mean() - losses[:, early.start:early.stop].mean()).item()


def icl_early_from_the_start(losses, early, late):  # ignores early.start
    return (losses[:, late.start:late.stop].mean() - losses[:, :early.stop].mean()).item()


def icl_empty_slice(losses, early, late):  # stop and start swapped: an empty slice, whose mean is nan
    return (losses[:, late.stop:late.start].mean() - losses[:, early.start:early.stop].mean()).item()


def icl_centres_losses_in_place(losses, early, late):  # right value, but the caller's losses are shifted
    losses -= losses.mean()
    return (losses[:, late.start:late.stop].mean() - losses[:, early.start:early.stop].mean()).item()



WRONG = {
    "03.1": [repeated_without_bos, repeated_two_independent_halves, repeated_raw_indices, repeated_same_row_everywhere,
             repeated_float_tokens, repeated_ignores_the_generator, repeated_reseeds_the_generator,
             repeated_seeds_the_global_state, repeated_never_draws_the_last_id, repeated_sorted_rows, repeated_skewed_draw,
             repeated_shuffles_vocab_in_place, repeated_consecutive_window, repeated_first_50_ids_only,
             repeated_randint_mod_100, repeated_each_draw_twice],
    "03.2": [induction_off_by_one, induction_whole_diagonal, induction_keeps_batch, induction_sum_not_mean,
             induction_first_copy_queries, induction_of_the_transpose, induction_per_sample],
    "03.3": [previous_is_self, previous_is_next, previous_over_all_rows, previous_two_back, previous_keeps_batch,
             previous_averaged_over_heads, previous_drops_bos_in_place],
    "03.4": [composition_unnormalised, composition_spectral_norms, composition_reversed_product, composition_elementwise,
             composition_transposed_W_A, composition_squared_norms, composition_normalises_in_place, composition_lying_float],
    "03.5": [ablation_scores_a_position, ablation_of_the_whole_layer, ablation_loss_over_everything,
             ablation_loss_from_the_first_copy, ablation_hard_coded_two_layers, ablation_loss_one_position_late,
             ablation_permanent_hook],
    "03.6": [copying_abs_numerator, copying_real_parts_only, copying_over_the_wrong_axis, copying_imaginary_part,
             copying_complex_result, copying_modulus_of_the_sum_below, copying_flattens_the_batch],
    "03.7": [icl_reversed, icl_inclusive_stop, icl_single_positions, icl_late_runs_to_the_end, icl_early_from_the_start,
             icl_empty_slice, icl_centres_losses_in_place],
}
