"""Known-wrong implementations of the notebook 03 exercises."""

import torch

from utils.checking import exercises, reference_function


# --- 03.1 repeated_tokens ---------------------------------------------------------------------------
def repeated_without_bos(bos, vocab, batch, length, generator):
    r = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    return torch.cat([r, r], dim=1)  # also the wrong shape


def repeated_two_independent_halves(bos, vocab, batch, length, generator):
    first = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    second = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    return torch.cat([torch.full((batch, 1), bos), first, second], dim=1)


def repeated_raw_indices(bos, vocab, batch, length, generator):  # indices into vocab, not ids
    r = torch.randint(0, len(vocab), (batch, length), generator=generator)
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1)


def repeated_same_row_everywhere(bos, vocab, batch, length, generator):
    r = vocab[torch.randint(0, len(vocab), (1, length), generator=generator)].expand(batch, length)
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1)


def repeated_float_tokens(bos, vocab, batch, length, generator):
    r = vocab[torch.randint(0, len(vocab), (batch, length), generator=generator)]
    return torch.cat([torch.full((batch, 1), bos), r, r], dim=1).float()


# --- 03.2 induction_score ---------------------------------------------------------------------------
def induction_off_by_one(pattern, half):  # the repeated token itself, not the one after it
    return pattern.diagonal(offset=-half, dim1=-2, dim2=-1)[..., -half:].mean(dim=(0, -1))


def induction_whole_diagonal(pattern, half):  # includes first-copy queries
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1).mean(dim=(0, -1))


def induction_keeps_batch(pattern, half):  # wrong axis: averages over heads instead of the batch
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1)[..., -half:].mean(dim=(1, -1))


def induction_sum_not_mean(pattern, half):
    return pattern.diagonal(offset=1 - half, dim1=-2, dim2=-1)[..., -half:].sum(-1).mean(0)


# --- 03.3 previous_token_score ----------------------------------------------------------------------
def previous_is_self(pattern):  # the diagonal, not the one below it
    return pattern.diagonal(offset=0, dim1=-2, dim2=-1).mean(dim=(0, -1))


def previous_is_next(pattern):  # above the diagonal: always 0 under a causal mask
    return pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def previous_over_all_rows(pattern):  # divides by pos instead of pos - 1
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0) / pattern.shape[-1]


# --- 03.4 composition_score -------------------------------------------------------------------------
def composition_unnormalised(W_A, W_B):
    return torch.linalg.matrix_norm(W_A @ W_B).item()


def composition_spectral_norms(W_A, W_B):
    return (torch.linalg.matrix_norm(W_A @ W_B, ord=2)
            / (torch.linalg.matrix_norm(W_A, ord=2) * torch.linalg.matrix_norm(W_B, ord=2))).item()


def composition_reversed_product(W_A, W_B):
    return (torch.linalg.matrix_norm(W_B @ W_A) / (torch.linalg.matrix_norm(W_A) * torch.linalg.matrix_norm(W_B))).item()


def composition_elementwise(W_A, W_B):
    return (torch.linalg.matrix_norm(W_A * W_B) / (torch.linalg.matrix_norm(W_A) * torch.linalg.matrix_norm(W_B))).item()


# --- 03.5 ablated_scores ----------------------------------------------------------------------------
def _ablated(model, tokens, layer, head, zero, loss_slice):
    half = (tokens.shape[1] - 1) // 2
    induction = reference_function(exercises()["03.2"])

    def hook(z, hook):
        zero(z, head)
        return z

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)]):
        logits, cache = model.run_with_cache(tokens)
    scores = torch.stack([induction(cache["pattern", l], half) for l in range(model.cfg.n_layers)])
    losses = -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    return scores, losses[:, loss_slice(half)].mean().item()


def ablation_scores_a_position(model, tokens, layer, head):  # wrong axis
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, h].zero_(), lambda half: slice(half + 1, None))


def ablation_of_the_whole_layer(model, tokens, layer, head):
    return _ablated(model, tokens, layer, head, lambda z, h: z.zero_(), lambda half: slice(half + 1, None))


def ablation_loss_over_everything(model, tokens, layer, head):  # not just the second copy
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), lambda half: slice(None))


def ablation_loss_from_the_first_copy(model, tokens, layer, head):
    return _ablated(model, tokens, layer, head, lambda z, h: z[:, :, h].zero_(), lambda half: slice(1, half))


# --- 03.6 copying_score -----------------------------------------------------------------------------
def copying_abs_numerator(eigenvalues):  # always 1
    return eigenvalues.sum(-1).abs() / eigenvalues.abs().sum(-1)


def copying_real_parts_only(eigenvalues):
    return eigenvalues.real.sum(-1) / eigenvalues.real.abs().sum(-1)


def copying_over_the_wrong_axis(eigenvalues):
    return eigenvalues.sum(0).real / eigenvalues.abs().sum(0)


# --- 03.7 icl_score ---------------------------------------------------------------------------------
def icl_reversed(losses, early, late):
    return (losses[:, early.start:early.stop].mean() - losses[:, late.start:late.stop].mean()).item()


def icl_inclusive_stop(losses, early, late):  # off by one: includes the stop positions
    return (losses[:, late.start:late.stop + 1].mean() - losses[:, early.start:early.stop + 1].mean()).item()


def icl_single_positions(losses, early, late):
    return (losses[:, late.start].mean() - losses[:, early.start].mean()).item()


WRONG = {
    "03.1": [repeated_without_bos, repeated_two_independent_halves, repeated_raw_indices, repeated_same_row_everywhere,
             repeated_float_tokens],
    "03.2": [induction_off_by_one, induction_whole_diagonal, induction_keeps_batch, induction_sum_not_mean],
    "03.3": [previous_is_self, previous_is_next, previous_over_all_rows],
    "03.4": [composition_unnormalised, composition_spectral_norms, composition_reversed_product, composition_elementwise],
    "03.5": [ablation_scores_a_position, ablation_of_the_whole_layer, ablation_loss_over_everything,
             ablation_loss_from_the_first_copy],
    "03.6": [copying_abs_numerator, copying_real_parts_only, copying_over_the_wrong_axis],
    "03.7": [icl_reversed, icl_inclusive_stop, icl_single_positions],
}
