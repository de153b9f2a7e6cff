"""Choosing the next token from logits: greedy, or sampling with temperature, top-k and
top-p, seeded per row and step so a run is reproducible and a row's tokens do not depend
on the other rows of its batch."""
import numpy as np

STRATEGIES = ("greedy", "sample")


def check_options(strategy, temperature, top_k, top_p):
    """ValueError naming the bad option."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: use one of {', '.join(STRATEGIES)}")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} must be > 0")
    if top_k is None or top_k < 0:
        raise ValueError(f"top_k={top_k!r} must be >= 0 (0 = no top-k filter)")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p!r} must be in (0, 1] (1 = no nucleus filter)")


def filtered_probs(logits, temperature=1.0, top_k=0, top_p=1.0):
    """float64 [V] probabilities of one row after temperature, top-k (keep the k largest)
    and top-p (keep the smallest set of largest probabilities whose sum reaches p)."""
    x = np.asarray(logits, np.float64) / float(temperature)
    if top_k and top_k < x.size:
        kth = np.partition(x, -top_k)[-top_k]
        x = np.where(x >= kth, x, -np.inf)
    x = x - np.max(x)
    p = np.exp(x)
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[:int(np.searchsorted(cum, top_p)) + 1]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return p


def choose(logits, strategy="greedy", temperature=1.0, top_k=0, top_p=1.0, seeds=None,
           step=0):
    """int32 [B] next tokens from float [B, V] logits.  Sampling draws one uniform number
    per row from ``numpy.random.default_rng([seeds[b], step])`` and inverts the cumulative
    distribution in id order."""
    logits = np.asarray(logits)
    if strategy == "greedy":
        return np.argmax(logits, axis=-1).astype(np.int32)
    out = np.zeros([logits.shape[0]], np.int32)
    for b in range(logits.shape[0]):
        p = filtered_probs(logits[b], temperature, top_k, top_p)
        u = np.random.default_rng([int(seeds[b]), int(step)]).random()
        cdf = np.cumsum(p)
        # the first id whose cumulative probability exceeds u: never a zero-probability id
        out[b] = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), p.size - 1)
    return out
