"""Will a training run fit in this machine's memory?  An estimate made before any work, so
an absurd setting (``--max_seq_length=100000``) is refused with the number it would need
instead of building gigabytes of records and dying at the first step.

The estimate is deliberately simple -- fixed runtime + weights with their Adam slots and
gradients + activations that grow with layers x batch x length x width and with the
attention scores (layers x batch x heads x length x (length + memory)) -- with its two
activation constants fitted to peak resident memory measured here for XLNet-base shaped
pretraining steps (bench/bench_compare.py: 4 x 128 with memory 96 and 4 x 512 with memory
384, float32).  It is meant to be right within a factor of about 1.5, which is plenty for
telling "fits" from "needs 40 GB".
"""
import os

ACCUM_FLAG = "--grad_accum_steps"

GIB = 1 << 30
RUNTIME_BYTES = int(0.9 * GIB)      # TensorFlow's runtime + the traced step graph
BYTES_PER_PARAM = 16                # float32 weight + 2 Adam slots + gradient
BYTES_PER_TOKEN_DIM = 190           # per layer x batch x length x d_model (both streams)
BYTES_PER_SCORE = 6                 # per layer x batch x head x query x key


def estimate_training_bytes(*, n_params, n_layer, d_model, n_head, batch_size, seq_len,
                            mem_len=0, two_stream=False, recompute=False):
    """Estimated peak host memory (bytes) of one training step."""
    klen = seq_len + (mem_len or 0)
    streams = 2 if two_stream else 1
    tokens = n_layer * batch_size * seq_len
    act = tokens * d_model * BYTES_PER_TOKEN_DIM * streams / 2 \
        + n_layer * batch_size * n_head * seq_len * klen * BYTES_PER_SCORE * streams / 2
    if recompute:      # one layer's activations plus every layer's input
        act = act / max(n_layer, 1) + tokens * d_model * 4
    return int(RUNTIME_BYTES + BYTES_PER_PARAM * n_params + act)


def estimate_inference_bytes(*, n_params, d_model, n_head, batch_size, seq_len, mem_len=0):
    """Estimated peak host memory (bytes) of one evaluation / prediction batch: the weights
    and ONE layer's working set at a time (nothing is kept for a backward pass), with the
    constants of :func:`estimate_training_bytes` for one layer's activations and scores."""
    klen = seq_len + (mem_len or 0)
    act = batch_size * seq_len * d_model * BYTES_PER_TOKEN_DIM / 2 \
        + batch_size * n_head * seq_len * klen * BYTES_PER_SCORE / 2
    return int(RUNTIME_BYTES + 4 * n_params + act)


def micro_batch_size(train_batch_size, grad_accum_steps):
    """The batch one micro-batch holds when ``--grad_accum_steps`` micro-batches make the
    ``--train_batch_size`` of an optimizer step: what a step's activations (the bulk of its
    memory) scale with.  Raises ValueError naming both flags when it does not divide."""
    if grad_accum_steps < 1:
        raise ValueError(f"{ACCUM_FLAG} must be >= 1 (1 = no accumulation), got "
                         f"{grad_accum_steps}")
    if train_batch_size % grad_accum_steps:
        raise ValueError(f"--train_batch_size={train_batch_size} is not divisible by "
                         f"{ACCUM_FLAG}={grad_accum_steps}: the batch of one optimizer step "
                         f"is cut into {grad_accum_steps} equal micro-batches; choose a "
                         f"divisor")
    return train_batch_size // grad_accum_steps


def per_replica_batch_size(train_batch_size, replicas, grad_accum_steps=1):
    """The rows of a step's batch on each replica (all its micro-batches); raises ValueError
    naming the flags when the batch does not split evenly over the replicas' micro-batches."""
    micro_batch_size(train_batch_size, grad_accum_steps)
    if train_batch_size % (replicas * grad_accum_steps):
        accum = f" x {ACCUM_FLAG}={grad_accum_steps} micro-batches" \
            if grad_accum_steps > 1 else ""
        raise ValueError(f"--train_batch_size={train_batch_size} is not divisible by the "
                         f"{replicas} replicas{accum}")
    return train_batch_size // replicas


def machine_memory_bytes():
    """Physical memory of this machine (0 when it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


SLACK = 1.5   # the estimate's factor of uncertainty: refuse only what cannot fit even then


def check_training_fits(what, **shape):
    """Raise ValueError naming ``what`` (e.g. "--train_batch_size=32 --seq_len=100000")
    when even the estimate divided by its uncertainty exceeds this machine's memory."""
    need = estimate_training_bytes(**shape)
    have = machine_memory_bytes()
    if have and need / SLACK > have:
        raise ValueError(
            f"{what} would need about {need / GIB:.1f} GiB of memory for one training step "
            f"(estimate; at least {need / SLACK / GIB:.1f} GiB), and this machine has "
            f"{have / GIB:.1f} GiB: use a smaller batch or sequence length (or "
            f"{ACCUM_FLAG} to split the batch into micro-batches, --recompute, or more "
            f"replicas)")
    return need


def check_inference_fits(what, **shape):
    """Raise ValueError naming ``what`` (e.g. "--eval_batch_size=128 --max_seq_length=100000")
    when even the estimate of one evaluation batch divided by its uncertainty exceeds this
    machine's memory."""
    need = estimate_inference_bytes(**shape)
    have = machine_memory_bytes()
    if have and need / SLACK > have:
        raise ValueError(
            f"{what} would need about {need / GIB:.1f} GiB of memory for one evaluation "
            f"batch (estimate; at least {need / SLACK / GIB:.1f} GiB), and this machine has "
            f"{have / GIB:.1f} GiB: use a smaller evaluation batch or sequence length")
    return need
