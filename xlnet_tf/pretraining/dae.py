"""The denoising auto-encoder baseline of the XLNet paper's ablation ("Transformer-XL + DAE"
in its Table 6: BERT's masked-LM objective on XLNet's backbone, with Transformer-XL memory).

It reads the SAME records and the same input pipeline as the permutation LM and predicts
the SAME positions (the records' ``is_masked`` positions that are not ``<sep>``/``<cls>``,
i.e. the rows of ``target_mapping``), but:

* the inputs at those positions are corrupted with BERT's rule: 80% become ``<mask>``,
  10% a random regular token, 10% stay as they are;
* there is no factorization order and no query stream: the content stream attends over the
  whole (corrupted) sequence and its memory in both directions, and the predicted positions
  are read from the content stream's last layer through the tied LM head.

Everything else -- memory carried across steps, optimizer, schedule, checkpoints, the
original-named export -- is the pretraining loop's, so the two objectives differ only in
what the model is asked to predict from what.
"""
import tensorflow as tf

from xlnet_tf.tokenization.tokenizer import MASK_ID

MASK_PROB = 0.8      # replaced by <mask>
RANDOM_PROB = 0.1    # replaced by a random regular token (the rest, 0.1, is kept)
# ids below this are XLNet's control symbols (<unk> <s> </s> <cls> <sep> <pad> <mask> <eod>
# <eop>): a random replacement is never one of them
FIRST_REGULAR_ID = 9

KEPT, MASKED, RANDOM = 0, 1, 2   # what corrupt() did to a predicted position


def predicted_positions(target_mapping):
    """bool [B, T]: the positions the permutation LM would predict (rows of
    ``target_mapping`` [B, P, T]; all-zero padding rows select nothing)."""
    return tf.reduce_max(target_mapping, axis=1) > 0


def corrupt(input_ids, predicted, seed, vocab_size):
    """BERT's 80/10/10 replacement at the ``predicted`` positions.

    Args:
      input_ids: int32 [B, T].
      predicted: bool [B, T].
      seed: int32/int64 [2], a stateless seed.
      vocab_size: python int; random replacements are drawn uniformly from
        ``[FIRST_REGULAR_ID, vocab_size)``.
    Returns:
      (corrupted int32 [B, T], kind int32 [B, T]: MASKED / RANDOM / KEPT at predicted
      positions, KEPT elsewhere).
    """
    input_ids = tf.cast(input_ids, tf.int32)
    shape = tf.shape(input_ids)
    seed = tf.cast(seed, tf.int64)
    u = tf.random.stateless_uniform(shape, seed)                               # [B, T]
    rnd = tf.random.stateless_uniform(shape, tf.random.experimental.stateless_fold_in(seed, 1),
                                      minval=FIRST_REGULAR_ID, maxval=vocab_size,
                                      dtype=tf.int32)                          # [B, T]
    to_mask = predicted & (u < MASK_PROB)
    to_random = predicted & (u >= MASK_PROB) & (u < MASK_PROB + RANDOM_PROB)
    corrupted = tf.where(to_mask, tf.fill(shape, MASK_ID),
                         tf.where(to_random, rnd, input_ids))
    kind = tf.where(to_mask, MASKED, tf.where(to_random, RANDOM, KEPT))
    return corrupted, tf.cast(kind, tf.int32)


def dae_batch(batch, seed, step, vocab_size):
    """One permutation-LM batch -> the DAE batch of the same step: ``input_ids`` corrupted
    at the predicted positions, ``seg_ids``, and the prediction slots (``target_mapping``,
    ``target``, ``target_mask``) unchanged.  The draw depends only on (seed, step), so a
    resumed run corrupts exactly as an uninterrupted one."""
    key = tf.random.experimental.stateless_fold_in(
        tf.stack([tf.constant(7, tf.int64), tf.cast(seed, tf.int64)]), tf.cast(step, tf.int64))
    predicted = predicted_positions(batch["target_mapping"])
    corrupted, _ = corrupt(batch["input_k"], predicted, key, vocab_size)
    return {"input_ids": corrupted, "seg_ids": batch["seg_ids"],
            "target_mapping": batch["target_mapping"], "target": batch["target"],
            "target_mask": batch["target_mask"]}


def dae_dataset(dataset, seed, vocab_size, start_step=0):
    """Map a pretraining dataset (one element per step) to DAE batches; ``start_step`` is
    the number of steps already done (resume)."""
    steps = tf.data.Dataset.range(start_step, start_step + 2 ** 62)
    return tf.data.Dataset.zip((dataset, steps)).map(
        lambda b, s: dae_batch(b, seed, s, vocab_size), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)


def model_inputs(batch, mems=None):
    """The backbone inputs of a DAE step: no ``perm_mask``, no ``target_mapping`` (content
    stream only, bidirectional attention over the sequence and its memory)."""
    inputs = {"input_ids": batch["input_ids"], "seg_ids": batch["seg_ids"]}
    if mems:
        inputs["mems"] = list(mems)
    return inputs


def dae_loss(model, batch, mems, training):
    """Mean cross-entropy of the predicted positions, read from the content stream.
    Returns (loss, new_mems)."""
    out = model.transformer(model_inputs(batch, mems), training=training)
    tm = tf.cast(batch["target_mapping"], out["hidden"].dtype)                 # [B, P, T]
    h = tf.einsum("bpt,btd->bpd", tm, out["hidden"])                           # [B, P, d]
    logits = model.lm_logits(h)                                                # [B, P, V]
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["target"],
                                                          logits=logits)        # [B, P]
    mask = tf.cast(batch["target_mask"], tf.float32)
    loss = tf.reduce_sum(xent * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
    return loss, list(out["new_mems"]) if mems else []
