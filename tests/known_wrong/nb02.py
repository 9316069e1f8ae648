"""Known-wrong implementations of the notebook 02 exercises."""

import math

import torch


# --- 02.1 additive_attention ------------------------------------------------------------------------
def _scores(hidden, W, b, v, tanh=True):
    pre = hidden @ W + b
    return (torch.tanh(pre) if tanh else pre) @ v  # [batch, pos]


def attention_unmasked(hidden, mask, W, b, v):  # padding takes part in the softmax
    return _scores(hidden, W, b, v).softmax(-1)


def attention_zeroed_after_softmax(hidden, mask, W, b, v):  # rows no longer sum to 1
    return _scores(hidden, W, b, v).softmax(-1) * mask


def attention_finite_mask(hidden, mask, W, b, v):  # -1e4 loses to real scores below -1e4
    return _scores(hidden, W, b, v).masked_fill(~mask, -1e4).softmax(-1)


def attention_without_tanh(hidden, mask, W, b, v):
    return _scores(hidden, W, b, v, tanh=False).masked_fill(~mask, float("-inf")).softmax(-1)


def attention_softmax_over_batch(hidden, mask, W, b, v):
    return _scores(hidden, W, b, v).masked_fill(~mask, float("-inf")).softmax(0).nan_to_num(0.0)


def attention_sigmoid(hidden, mask, W, b, v):  # gates, not a distribution
    return torch.sigmoid(_scores(hidden, W, b, v)) * mask


def attention_without_bias(hidden, mask, W, b, v):
    return _scores(hidden, W, 0 * b, v).masked_fill(~mask, float("-inf")).softmax(-1)


def attention_scaled(hidden, mask, W, b, v):  # a transformer habit: divide by sqrt(H)
    return (_scores(hidden, W, b, v) / hidden.shape[-1] ** 0.5).masked_fill(~mask, float("-inf")).softmax(-1)


def attention_softmax_then_renormalised(hidden, mask, W, b, v):  # underflows to 0 / 0 when padding scores highest
    weights = _scores(hidden, W, b, v).softmax(-1) * mask
    return weights / weights.sum(-1, keepdim=True)


def attention_mask_minus_1e5(hidden, mask, W, b, v):  # finite, and above real scores of -4e6
    return _scores(hidden, W, b, v).masked_fill(~mask, -1e5).softmax(-1)


# --- 02.2 gradient_importance -----------------------------------------------------------------------
def _gradient(model, tokens, mask, detach=True, of="sigmoid", at="embeddings"):
    with torch.enable_grad():
        embeddings = model.embed(tokens).detach().requires_grad_(True)
        hidden = model.encode(embeddings, mask)
        alpha = model.weights(hidden, mask)
        if detach:
            alpha = alpha.detach()
        logit = model.decode(hidden, alpha)
        y = torch.sigmoid(logit) if of == "sigmoid" else logit
        wrt = embeddings if at == "embeddings" else hidden
        grad, = torch.autograd.grad(y.sum(), wrt)
    return grad.detach(), wrt.detach()


def _normalised(score, mask):
    score = score * mask
    return score / score.sum(-1, keepdim=True)


def gradient_through_attention(model, tokens, mask):  # J&W detach the attention
    grad, e = _gradient(model, tokens, mask, detach=False)
    return _normalised((grad * e).sum(-1).abs(), mask)


def gradient_norm(model, tokens, mask):  # |g|, not |g . e|
    grad, e = _gradient(model, tokens, mask)
    return _normalised(grad.norm(dim=-1), mask)


def gradient_abs_before_sum(model, tokens, mask):  # sum_d |g e|, not |sum_d g e|
    grad, e = _gradient(model, tokens, mask)
    return _normalised((grad * e).abs().sum(-1), mask)


def gradient_signed(model, tokens, mask):  # no absolute value
    grad, e = _gradient(model, tokens, mask)
    return _normalised((grad * e).sum(-1), mask)


def gradient_not_normalised(model, tokens, mask):
    grad, e = _gradient(model, tokens, mask)
    return (grad * e).sum(-1).abs() * mask


def gradient_at_hidden_states(model, tokens, mask):  # input x gradient at the encoder's output
    grad, h = _gradient(model, tokens, mask, at="hidden")
    return _normalised((grad * h).sum(-1).abs(), mask)


def gradient_of_first_sentence_only(model, tokens, mask):  # backward from y[0]: other rows get no gradient
    with torch.enable_grad():
        e = model.embed(tokens).detach().requires_grad_(True)
        hidden = model.encode(e, mask)
        y = torch.sigmoid(model.decode(hidden, model.weights(hidden, mask).detach()))
        grad, = torch.autograd.grad(y[0], e)
    return _normalised((grad * e.detach()).sum(-1).abs(), mask).nan_to_num(0.0)


# --- 02.3 leave_one_out -----------------------------------------------------------------------------
def _loo(model, tokens, mask, how="delete", signed=False, logit=False, shift=0):
    output = (lambda t, m: model(t, m)[0]) if logit else model.predict
    base = output(tokens, mask)
    effect = torch.zeros(tokens.shape, dtype=base.dtype)
    pos = tokens.shape[1]
    for t in range(pos):
        gone = min(t + shift, pos - 1)
        if how == "delete":
            keep = torch.arange(pos) != gone
            changed = output(tokens[:, keep], mask[:, keep])
        elif how == "pad":
            changed = output(tokens.masked_fill(torch.arange(pos) == gone, 0), mask)
        else:  # "mask": the token stays, only its mask bit goes
            changed = output(tokens, mask & (torch.arange(pos) != gone))
        diff = changed - base
        effect[:, t] = diff if signed else diff.abs()
    return effect * mask


def loo_replaced_by_padding(model, tokens, mask):  # the LSTM still takes a step over the zero embedding
    return _loo(model, tokens, mask, how="pad")


def loo_mask_only(model, tokens, mask):  # unmasking is not deleting: a shorter packed sequence, other tokens
    return _loo(model, tokens, mask, how="mask")


def loo_signed(model, tokens, mask):
    return _loo(model, tokens, mask, signed=True)


def loo_on_logits(model, tokens, mask):  # J&W measure y_hat, a probability
    return _loo(model, tokens, mask, logit=True)


def loo_off_by_one(model, tokens, mask):
    return _loo(model, tokens, mask, shift=1)


def loo_normalised(model, tokens, mask):  # not asked for: the size of the change is the point
    effect = _loo(model, tokens, mask)
    return effect / effect.sum(-1, keepdim=True)


def loo_leave_one_in(model, tokens, mask):  # keeps only token t instead of removing it
    base = model.predict(tokens, mask)
    effect = torch.zeros(tokens.shape, dtype=base.dtype)
    for t in range(tokens.shape[1]):
        effect[:, t] = (model.predict(tokens[:, t:t + 1], mask[:, t:t + 1] | True) - base).abs()
    return effect * mask


# --- 02.4 jsd ---------------------------------------------------------------------------------------
def _kl(a, b):
    return (a * torch.where(a > 0, a / b.where(b > 0, 1.0), 1.0).log()).sum(-1)


def jsd_log2(p, q):
    m = (p + q) / 2
    return (_kl(p, m) + _kl(q, m)) / 2 / math.log(2)


def jsd_is_kl(p, q):
    return _kl(p, q)


def jsd_without_halves(p, q):
    m = (p + q) / 2
    return _kl(p, m) + _kl(q, m)


def jsd_distance(p, q):
    m = (p + q) / 2
    return ((_kl(p, m) + _kl(q, m)) / 2).sqrt()


def jsd_nan_on_zeros(p, q):  # 0 * log 0 = nan
    m = (p + q) / 2
    return ((p * (p / m).log()).sum(-1) + (q * (q / m).log()).sum(-1)) / 2


def jsd_mean_not_sum(p, q):
    m = (p + q) / 2
    kl = lambda a: (a * torch.where(a > 0, a / m.where(m > 0, 1.0), 1.0).log()).mean(-1)  # noqa: E731
    return (kl(p) + kl(q)) / 2


def jsd_one_sided(p, q):  # KL(p || m) only: not symmetric
    return _kl(p, (p + q) / 2)


def jsd_nan_replaced_afterwards(p, q):  # right values, but the nan made at 0 * log 0 flows back as a nan gradient
    m = (p + q) / 2
    kl = lambda a: (a * (a / m).log()).nan_to_num(0.0).sum(-1)  # noqa: E731
    return (kl(p) + kl(q)) / 2


def jsd_xlogy(p, q):  # xlogy(0, 0) = 0, but its gradient at 0 is log 0: nan
    m = (p + q) / 2
    kl = lambda a: (torch.xlogy(a, a) - torch.xlogy(a, m)).sum(-1)  # noqa: E731
    return (kl(p) + kl(q)) / 2


# --- 02.5 adversarial_attention -----------------------------------------------------------------------
def _search(model, tokens, mask, k, steps, lr, eps, seed, select=True, masked=True, include_own=True, constraint=True,
            global_rng=False, first_within_eps=False):
    generator = None if global_rng else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        hidden = model.encode(model.embed(tokens), mask)
        alpha = model.weights(hidden, mask)
        y_hat = torch.sigmoid(model.decode(hidden, alpha))
    batch, pos = tokens.shape
    real = mask[:, None, :].expand(batch, k, pos) if masked else torch.ones(batch, k, pos, dtype=torch.bool)
    start = (mask / mask.sum(-1, keepdim=True)).log()[:, None, :] if masked else torch.zeros(batch, 1, pos)
    noise = 3 * torch.randn(batch, k, pos, generator=generator, dtype=hidden.dtype)

    def candidates(logits):
        a = logits.masked_fill(~real, float("-inf")).softmax(-1)
        return a, torch.sigmoid(model.out(torch.einsum("bkp,bph->bkh", a, hidden)).squeeze(-1))

    with torch.enable_grad():
        logits = (start + noise).masked_fill(~real, 0.0).requires_grad_(True)
        optimiser = torch.optim.Adam([logits], lr=lr)
        for _ in range(steps):
            a, y = candidates(logits)
            penalty = 500 * torch.relu((y - y_hat[:, None]).abs() - eps) if constraint else 0.0
            loss = (-_jsd(a, alpha[:, None]) + penalty).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        a, y = candidates(logits)
    if include_own:
        a, y = torch.cat([alpha[:, None], a], 1), torch.cat([y_hat[:, None], y], 1)
    divergence = _jsd(a, alpha[:, None])
    if first_within_eps:  # the first candidate that keeps the output (the model's own attention if none does)
        keeps = (y - y_hat[:, None]).abs() <= eps
        keeps[:, 0] = False
        first = torch.where(keeps.any(-1), keeps.float().argmax(-1), torch.zeros(batch, dtype=torch.long))
        return a[torch.arange(batch), first]
    if select:
        divergence = divergence.masked_fill((y - y_hat[:, None]).abs() > eps, -1.0)
    return a[torch.arange(batch), divergence.argmax(-1)]


def _jsd(p, q):
    m = (p + q) / 2
    return (_kl(p, m) + _kl(q, m)) / 2


def adversary_returns_own_attention(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    with torch.no_grad():
        return model(tokens, mask)[1]


def adversary_without_selection(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return _search(model, tokens, mask, k, steps, lr, eps, seed, select=False)


def adversary_without_constraint(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return _search(model, tokens, mask, k, steps, lr, eps, seed, constraint=False)


def adversary_unmasked(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return _search(model, tokens, mask, k, steps, lr, eps, seed, masked=False, include_own=False)


def adversary_one_hot_on_last_token(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return torch.nn.functional.one_hot(mask.sum(-1) - 1, tokens.shape[1]).to(torch.float64)


def adversary_uniform(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return mask / mask.sum(-1, keepdim=True)


def adversary_logits_not_softmaxed(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return _search(model, tokens, mask, k, steps, lr, eps, seed).log()


def adversary_no_steps(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):  # never optimises
    return _search(model, tokens, mask, k, 0, lr, eps, seed)


def adversary_global_random_state(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):  # seed unused
    return _search(model, tokens, mask, k, steps, lr, eps, seed, global_rng=True)


def adversary_first_within_eps(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return _search(model, tokens, mask, k, steps, lr, eps, seed, first_within_eps=True)


def adversary_fixed_eps(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):  # the eps passed is ignored
    return _search(model, tokens, mask, k, steps, lr, 0.01, seed)


def adversary_own_attention_not_a_choice(model, tokens, mask, k=5, steps=300, lr=0.01, eps=0.01, seed=0):
    return _search(model, tokens, mask, k, steps, lr, eps, seed, include_own=False)


WRONG = {
    "02.1": [attention_unmasked, attention_zeroed_after_softmax, attention_finite_mask, attention_without_tanh,
             attention_softmax_over_batch, attention_sigmoid, attention_without_bias, attention_scaled,
             attention_softmax_then_renormalised, attention_mask_minus_1e5],
    "02.2": [gradient_through_attention, gradient_norm, gradient_abs_before_sum, gradient_signed, gradient_not_normalised,
             gradient_at_hidden_states, gradient_of_first_sentence_only],
    "02.3": [loo_replaced_by_padding, loo_mask_only, loo_signed, loo_on_logits, loo_off_by_one, loo_normalised,
             loo_leave_one_in],
    "02.4": [jsd_log2, jsd_is_kl, jsd_without_halves, jsd_distance, jsd_nan_on_zeros, jsd_mean_not_sum, jsd_one_sided,
             jsd_nan_replaced_afterwards, jsd_xlogy],
    "02.5": [adversary_returns_own_attention, adversary_without_selection, adversary_without_constraint, adversary_unmasked,
             adversary_one_hot_on_last_token, adversary_uniform, adversary_logits_not_softmaxed, adversary_no_steps,
             adversary_global_random_state, adversary_fixed_eps, adversary_own_attention_not_a_choice,
             adversary_first_within_eps],
}
