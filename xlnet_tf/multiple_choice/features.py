"""Multiple-choice features as the original ``run_race.py`` builds them.

For each option of a question, the QA text is the question with every ``_`` replaced by the
option when the question has a blank, else ``question + " " + option``.  Its ids keep their
LAST ``max_qa_length`` (the end of a long question sits next to the option), and the
passage's ids are cut from their END so that ``passage <sep> qa <sep> <cls>`` fits in
``max_seq_length``; one sequence per option, left-padded::

    [0 .. 0  p1 .. pn <sep>  q1 .. qm <sep>  <cls>]      input_ids  (left padding with 0)
    [1 .. 1  0  ..  0   0    0  ..  0   0      0  ]      input_mask (1 = padding, float)
    [4 .. 4  0  ..  0   0    1  ..  1   1      2  ]      seg_ids

so a question gives ``[C, T]`` arrays (the original concatenates them into one ``[C*T]``
feature; the records here store the same flat layout).

One difference from the original, on purpose: when the passage is short enough not to be
cut, the original appends ``<sep> qa <sep> <cls>`` to the passage's own token list (one list
shared by all options), so option 2 of such a question also carries option 1's QA tokens,
option 3 those of options 1 and 2, and so on.  Here every option gets its own sequence;
long passages, whose cut made a copy in the original, are packed exactly as there.

:func:`qa_text` / :func:`pack_choice` are the pure-Python packer, :func:`qa_text_tf` /
:func:`pack_choices_tf` the same on string / ragged id tensors (the SavedModel's serving
signature).
"""
from typing import NamedTuple, Sequence

import numpy as np

from xlnet_tf.tokenization.tokenizer import CLS_ID, SEG_ID_A, SEG_ID_B, SEG_ID_CLS, SEG_ID_PAD, SEP_ID

PAD_INPUT_ID = 0
#: <sep> qa <sep> <cls> around the passage
N_SPECIAL = 3


class ChoiceFeatures(NamedTuple):
    input_ids: np.ndarray    # [C, T] int32
    input_mask: np.ndarray   # [C, T] float32, 1 = padding
    seg_ids: np.ndarray      # [C, T] int32
    label: int               # gold option (-1 when unknown)
    truncated: bool          # the passage or a QA part lost ids


def check_lengths(max_seq_length, max_qa_length):
    """``max_qa_length`` must leave room for the three special tokens."""
    if max_seq_length < N_SPECIAL + 1:
        raise ValueError(f"--max_seq_length={max_seq_length} is too small: the layout needs "
                         f"<sep> <sep> <cls> and at least one token")
    if not 0 < max_qa_length <= max_seq_length - N_SPECIAL:
        raise ValueError(f"--max_qa_length={max_qa_length} must be in [1, --max_seq_length - "
                         f"3 = {max_seq_length - N_SPECIAL}]")


def qa_text(question, option):
    """The original's QA string of one option."""
    if "_" in question:
        return question.replace("_", option)
    return " ".join([question, option])


def pack_choice(context_ids: Sequence[int], qa_ids: Sequence[int], max_seq_length: int,
                max_qa_length: int):
    """One option's sequence -> ``(input_ids, input_mask, seg_ids, truncated)`` (lists of
    length ``max_seq_length``)."""
    T = int(max_seq_length)
    qa = list(qa_ids)[-int(max_qa_length):] if qa_ids else []
    ctx = list(context_ids)[: max(0, T - N_SPECIAL - len(qa))]
    truncated = len(qa) < len(qa_ids) or len(ctx) < len(context_ids)
    ids = ctx + [SEP_ID] + qa + [SEP_ID, CLS_ID]
    segs = [SEG_ID_A] * (len(ctx) + 1) + [SEG_ID_B] * (len(qa) + 1) + [SEG_ID_CLS]
    n_pad = T - len(ids)
    return ([PAD_INPUT_ID] * n_pad + ids, [1.0] * n_pad + [0.0] * len(ids),
            [SEG_ID_PAD] * n_pad + segs, truncated)


def convert_example(example, tokenizer, max_seq_length, max_qa_length):
    """:class:`~xlnet_tf.multiple_choice.readers.MCExample` -> :class:`ChoiceFeatures`."""
    context_ids = tokenizer.encode_ids(example.context)
    rows = [pack_choice(context_ids, tokenizer.encode_ids(qa_text(example.question, o)),
                        max_seq_length, max_qa_length) for o in example.options]
    return ChoiceFeatures(np.array([r[0] for r in rows], np.int32),
                          np.array([r[1] for r in rows], np.float32),
                          np.array([r[2] for r in rows], np.int32),
                          -1 if example.label is None else int(example.label),
                          any(r[3] for r in rows))


# ---------------------------------------------------------------------------- in-graph
def qa_text_tf(questions, options):
    """:func:`qa_text` on string tensors of the same shape ``[N]``."""
    import tensorflow as tf
    pieces = tf.strings.split(questions, "_")                                # [N, (k)]
    has_blank = pieces.row_lengths() > 1                                     # [N]
    # every piece but the last is followed by the option
    last = tf.ragged.range(pieces.row_lengths()) == (pieces.row_lengths() - 1)[:, None]
    fill = tf.ragged.map_flat_values(
        tf.where, last, tf.zeros_like(pieces), tf.gather(options, pieces.value_rowids()))
    filled = tf.strings.reduce_join(tf.strings.join([pieces, fill]), axis=1)  # [N]
    appended = tf.strings.join([questions, options], separator=" ")          # [N]
    return tf.where(has_blank, filled, appended)


def pack_choices_tf(context_ids, qa_ids, max_seq_length: int, max_qa_length: int):
    """:func:`pack_choice` on ragged id tensors ``[N, (n)]`` and ``[N, (m)]`` ->
    ``(input_ids int32 [N, T], input_mask float32 [N, T], seg_ids int32 [N, T])``."""
    import tensorflow as tf
    T = int(max_seq_length)
    ctx, qa = tf.cast(context_ids, tf.int32), tf.cast(qa_ids, tf.int32)
    len_qa = qa.row_lengths()                                                # [N]
    qa_pos = tf.ragged.range(len_qa)                                         # [N, (m)]
    qa = tf.ragged.boolean_mask(qa, qa_pos >= (len_qa - max_qa_length)[:, None])
    keep = tf.maximum(tf.constant(0, tf.int64), T - N_SPECIAL - qa.row_lengths())                 # [N]
    ctx = tf.ragged.boolean_mask(ctx, tf.ragged.range(ctx.row_lengths()) < keep[:, None])
    n = ctx.nrows()
    one = lambda v: tf.fill(tf.stack([n, 1]), tf.constant(v, tf.int32))      # noqa: E731
    like = lambda rt, v: tf.ones_like(rt) * v                                # noqa: E731
    ids = tf.concat([ctx, one(SEP_ID), qa, one(SEP_ID), one(CLS_ID)], axis=1)     # [N, (L)]
    segs = tf.concat([like(ctx, SEG_ID_A), one(SEG_ID_A), like(qa, SEG_ID_B), one(SEG_ID_B),
                      one(SEG_ID_CLS)], axis=1)                              # [N, (L)]
    n_pad = T - ids.row_lengths()                                            # [N]
    pad = tf.RaggedTensor.from_row_lengths(tf.zeros([tf.reduce_sum(n_pad)], tf.int32), n_pad)
    input_ids = tf.concat([pad + PAD_INPUT_ID, ids], 1).to_tensor(shape=[None, T])  # [N, T]
    seg_ids = tf.concat([pad + SEG_ID_PAD, segs], 1).to_tensor(shape=[None, T])     # [N, T]
    input_mask = tf.cast(tf.range(T)[None, :] < tf.cast(n_pad, tf.int32)[:, None],
                         tf.float32)                                         # [N, T]
    return input_ids, input_mask, seg_ids

