"""Attention masks: the one place where the original's mask convention is converted.

Public inputs use the ORIGINAL convention (1.0 = blocked / padding):
  * ``input_mask`` [B, T]:    1 = padding token (a padded KEY is invisible to every query);
    with a memory of M positions it may instead be [B, M + T], covering the memory too
    (long documents read segment by segment carry the padding of an earlier segment into
    the memory; a [B, T] mask leaves every memory column visible, as in the original);
  * ``perm_mask``  [B, T, T]: perm_mask[b, i, j] = 1 -> query i may NOT attend key j;
  * ``mem_mask``   [B, M]:    1 = an empty memory slot (invisible to every query: a cache
    that holds texts of different lengths in one batch, left-padded).  The same blocking
    as the memory columns of a [B, M + T] ``input_mask``; both may be given (either blocks).
Inside the model a mask is a BOOLEAN "may attend" tensor of shape [B|1, 1, T|1, K]
(axis 1 broadcasts over heads), K = M + T keys (M memory positions first).

Worked example (bi attention, T = 3, M = 1 memory slot, one row, input_mask = [0, 0, 1]
(the third token is padding), no perm_mask).  Columns are keys [m0, x0, x1, x2]::

    blocked (original attn_mask)       content stream allows       query stream allows
           m0 x0 x1 x2                        m0 x0 x1 x2                 m0 x0 x1 x2
      x0 [  0  0  0  1 ]                 x0 [  1  1  1  0 ]          x0 [  1  1  1  0 ]
      x1 [  0  0  0  1 ]                 x1 [  1  1  1  0 ]          x1 [  1  1  1  0 ]
      x2 [  0  0  0  1 ]                 x2 [  1  1  1  1 ]          x2 [  1  1  1  0 ]

Memory columns are never blocked unless ``mem_mask`` marks them; the content stream may always see itself (the
original's ``non_tgt_mask``: the diagonal j = M + i is cleared); the query stream uses the
blocked matrix as is, so with a perm_mask a prediction target never sees its own token.
With ``attn_type='uni'`` the causal part blocks j > M + i, and ``same_length`` also blocks
j < i so every query sees exactly M + 1 keys.
"""
import tensorflow as tf

from xlnet_tf.modeling.ops import dims


def causal_blocked(qlen, mlen, same_length):
    """[T, K] bool, True = blocked, for attn_type='uni' (the original's causal mask)."""
    i = tf.range(qlen)[:, None]                                   # [T, 1]
    j = tf.range(mlen + qlen)[None, :]                            # [1, K]
    blocked = j > mlen + i                                        # [T, K]
    if same_length:
        blocked = blocked | (j < i)
    return blocked


def attention_masks(qlen, mlen, input_mask=None, perm_mask=None, attn_type="bi",
                    same_length=False, mem_mask=None):
    """Build the "may attend" masks of the content and the query stream.

    Args:
      qlen, mlen: python ints (static lengths of the segment and of the memory).
      input_mask: optional float [B, T], 1 = padding; or [B, M + T] (memory keys first).
      perm_mask: optional float [B, T, T], 1 = query i may not attend key j.
      mem_mask: optional float [B, M], 1 = empty memory slot (blocked for every query).
    Returns:
      (content_allowed, query_allowed): bool tensors broadcastable to [B, 1, T, K], or
      (None, None) when nothing is masked (bi attention without masks).
    """
    blocked = None                                                # broadcastable to [B, T, K]
    if attn_type == "uni":
        blocked = causal_blocked(qlen, mlen, same_length)[None]   # [1, T, K]
    data = None
    mem_keys = None
    if input_mask is not None:
        data = tf.cast(input_mask, tf.float32)[:, None, :] > 0    # [B, 1, T] or [B, 1, K]
        if mlen > 0 and input_mask.shape[-1] == mlen + qlen:
            # the mask covers the memory: its columns come from it, not all-visible
            data, mem_keys = data[:, :, mlen:], data[:, :, :mlen]  # [B, 1, T], [B, 1, M]
    if perm_mask is not None:
        pm = tf.cast(perm_mask, tf.float32) > 0                   # [B, T, T]
        data = pm if data is None else (data | pm)                # [B, T|1, T]
    if mem_mask is not None and mlen > 0:
        # empty memory slots: the same as a [B, M + T] input_mask's memory columns
        mem_blocked = tf.cast(mem_mask, tf.float32)[:, None, :] > 0  # [B, 1, M]
        mem_keys = mem_blocked if mem_keys is None else (mem_keys | mem_blocked)
        if data is None:
            data = tf.zeros([dims(mem_blocked)[0], 1, qlen], tf.bool)  # [B, 1, T]
    if data is not None:
        if mlen > 0:
            # memory columns are visible unless the memory part of input_mask, or
            # mem_mask, blocks them
            if mem_keys is None:
                mem_keys = tf.zeros(dims(data)[:1] + [1, mlen], tf.bool)  # [B, 1, M]
            mem_keys = tf.broadcast_to(mem_keys, dims(data)[:2] + [mlen])  # [B, T|1, M]
            data = tf.concat([mem_keys, data], axis=2)            # [B, T|1, K]
        blocked = data if blocked is None else (blocked | data)
    if blocked is None:
        return None, None
    query_blocked = blocked                                       # [B|1, T|1, K]
    diag = tf.equal(tf.range(mlen + qlen)[None, :], mlen + tf.range(qlen)[:, None])  # [T, K]
    content_blocked = blocked & tf.logical_not(diag)[None]        # [B|1, T, K]
    return (tf.logical_not(content_blocked)[:, None],             # [B|1, 1, T, K]
            tf.logical_not(query_blocked)[:, None])               # [B|1, 1, T|1, K]


def segment_mismatch(seg_ids, mlen):
    """bool [B, T, K]: True where query i and key j lie in DIFFERENT segments.

    Memory positions count as segment 0 (as in the original); only equality of ids matters.
    """
    seg_ids = tf.cast(seg_ids, tf.int32)                          # [B, T]
    if mlen > 0:
        mem = tf.zeros([dims(seg_ids)[0], mlen], tf.int32)
        cat = tf.concat([mem, seg_ids], axis=1)                   # [B, K]
    else:
        cat = seg_ids
    return tf.not_equal(seg_ids[:, :, None], cat[:, None, :])     # [B, T, K]
