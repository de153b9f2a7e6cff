"""Classification features: the original ``classifier_utils.convert_single_example``.

``A <sep> [B <sep>] <cls>`` with CLS **last**, segment ids A=0 B=1 CLS=2, **left** padding with
id 0, ``input_mask`` 1 on padding (0 on real tokens), segment id 4 on padding. A pair is
truncated to ``max_seq_length - 3`` by popping the last token of the longer side (ties from B), a
single text to ``max_seq_length - 2``. As in the original, B only counts when it has tokens: a
text_b that tokenizes to nothing (empty or whitespace only) is packed as a single text, and a B
that the pair truncation removes entirely leaves no B part and no second ``<sep>`` (A keeps its
pair budget). :func:`pack_ids` is the pure-Python packer;
:func:`pack_ids_tf` is the same on a batch of ragged id tensors (used by the SavedModel's
serving signature).
"""
from typing import List, NamedTuple, Optional, Sequence, Union

import tensorflow as tf

from xlnet_tf.classification.readers import PaddingInputExample
from xlnet_tf.tokenization.tokenizer import CLS_ID, SEG_ID_A, SEG_ID_B, SEG_ID_CLS, SEG_ID_PAD, SEP_ID

# Pad id of the classification features: 0 (<unk>), as the original, not <pad>=5. Padding is
# masked out by input_mask, so the id only affects outputs at pad positions.
PAD_INPUT_ID = 0


class InputFeatures(NamedTuple):
    input_ids: List[int]  # [T]
    input_mask: List[float]  # [T], 1 = padding
    seg_ids: List[int]  # [T] (the record key on disk is segment_ids)
    label_id: Union[int, float]
    is_real_example: bool



def truncate_seq_pair(tokens_a: List[int], tokens_b: List[int], max_length: int) -> None:
    """In place: pop the last token of the longer list until ``len(a) + len(b) <= max_length``.

    Ties pop from ``tokens_b`` (the original ``_truncate_seq_pair``). Closed form, used by
    ``pack_ids_tf``: if the total exceeds the budget, A keeps ``min(len_a, max(ceil(budget/2),
    budget - len_b))`` tokens and B the rest of the budget.
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def check_max_seq_length(max_seq_length: int, pair: bool) -> int:
    need = 3 if pair else 2
    if int(max_seq_length) != max_seq_length or max_seq_length < need:
        raise ValueError(
            f"max_seq_length={max_seq_length} is too small: a {'pair' if pair else 'single text'} needs "
            f"at least {need} positions for <sep>{' <sep>' if pair else ''} <cls>.")
    return int(max_seq_length)


def pack_ids(ids_a: Sequence[int], ids_b: Optional[Sequence[int]], max_seq_length: int):
    """Packs token ids into the classification layout (pure Python, no TF).

    Returns ``(input_ids, input_mask, seg_ids)``, each a list of length ``max_seq_length``:

        [0 .. 0  a1 .. an <sep>  b1 .. bm <sep>  <cls>]      input_ids  (left padding with 0)
        [1 .. 1  0  ..  0   0    0  ..  0   0      0  ]      input_mask (1 = padding, float)
        [4 .. 4  0  ..  0   0    1  ..  1   1      2  ]      seg_ids

    Inputs longer than the budget are truncated (``max_seq_length - 3`` for a pair with
    ``truncate_seq_pair``, ``max_seq_length - 2`` for a single text keeping the first tokens).
    An empty ``ids_b`` is a single text; a B truncated away entirely gets no ``<sep>`` (the
    original tests the token list, before and after truncation).
    """
    T = check_max_seq_length(max_seq_length, ids_b is not None)
    a = [int(i) for i in ids_a]
    b = [int(i) for i in ids_b or ()]
    if b:
        truncate_seq_pair(a, b, T - 3)
    else:
        a = a[: T - 2]
    ids = a + [SEP_ID]
    segs = [SEG_ID_A] * (len(a) + 1)
    if b:
        ids += b + [SEP_ID]
        segs += [SEG_ID_B] * (len(b) + 1)
    ids.append(CLS_ID)
    segs.append(SEG_ID_CLS)
    n_pad = T - len(ids)
    input_ids = [PAD_INPUT_ID] * n_pad + ids
    input_mask = [1.0] * n_pad + [0.0] * len(ids)
    seg_ids = [SEG_ID_PAD] * n_pad + segs
    return input_ids, input_mask, seg_ids


def _label_id(label, label_list, is_regression):
    if is_regression:
        return float(label)
    try:
        return label_list.index(label)
    except ValueError:
        raise ValueError(f"label {label!r} is not in the label list {label_list}.") from None


def convert_single_example(example, label_list, max_seq_length, tokenizer, is_regression=None):
    """``InputExample`` → ``InputFeatures`` (the original ``convert_single_example``).

    Args:
      example: an ``InputExample`` or a ``PaddingInputExample``.
      label_list: labels in id order, or None for regression.
      max_seq_length: T.
      tokenizer: anything with ``encode_ids(text)`` applying the original text rules (e.g.
        ``xlnet_tf.tokenization.tokenizer.Tokenizer``).
      is_regression: default ``label_list is None``.
    """
    return convert_example(example, label_list, max_seq_length, tokenizer, is_regression)[0]


def convert_example(example, label_list, max_seq_length, tokenizer, is_regression):
    """``convert_single_example`` plus whether tokens were cut by truncation."""
    if is_regression is None:
        is_regression = label_list is None
    if isinstance(example, PaddingInputExample):
        T = int(max_seq_length)
        return InputFeatures([0] * T, [1.0] * T, [0] * T, 0.0 if is_regression else 0, False), False
    ids_a = tokenizer.encode_ids(example.text_a)
    ids_b = tokenizer.encode_ids(example.text_b) if example.text_b is not None else None
    input_ids, input_mask, seg_ids = pack_ids(ids_a, ids_b, max_seq_length)
    n_tokens = len(ids_a) + (len(ids_b) + 1 if ids_b else 0) + 2
    feats = InputFeatures(input_ids, input_mask, seg_ids,
                          _label_id(example.label, label_list, is_regression), True)
    return feats, n_tokens > int(max_seq_length)


def pack_ids_tf(ragged_a, ragged_b, max_seq_length: int):
    """Batched, in-graph ``pack_ids``: same layout, truncation and padding.

    Args:
      ragged_a: ``tf.RaggedTensor`` ``[B, (n)]`` of token ids (any integer dtype; a dense
        ``[B, n]`` tensor is taken as rows of exactly n ids).
      ragged_b: ``tf.RaggedTensor`` ``[B, (m)]`` or None for single-text tasks.
      max_seq_length: T (a Python int).
    Returns:
      ``(input_ids int32 [B, T], input_mask float32 [B, T], seg_ids int32 [B, T])``.
    Rows whose B is empty are packed as single texts, and a B truncated away gets no
    ``<sep>``, as in `pack_ids`.
    """
    pair = ragged_b is not None
    T = check_max_seq_length(max_seq_length, pair)
    a = _as_ragged_ids(ragged_a, "ragged_a")  # [B, (n)]
    len_a = a.row_lengths()  # [B] int64
    single_a = tf.minimum(len_a, T - 2)  # [B] A's length packed as a single text
    if pair:
        b = _as_ragged_ids(ragged_b, "ragged_b")  # [B, (m)]
        len_b = b.row_lengths()  # [B]
        budget = tf.constant(T - 3, tf.int64)
        over = len_a + len_b > budget  # [B]
        keep_a = tf.minimum(len_a, tf.maximum((budget + 1) // 2, budget - len_b))  # [B]
        new_a = tf.where(over, keep_a, len_a)  # [B]
        new_b = tf.where(over, budget - new_a, len_b)  # [B]
        new_a = tf.where(len_b > 0, new_a, single_a)  # [B] an empty B: a single text
        new_b = tf.where(len_b > 0, new_b, 0)  # [B]
        a = _ragged_prefix(a, new_a)
        b = _ragged_prefix(b, new_b)
    else:
        a = _ragged_prefix(a, single_a)
    nrows = a.nrows()
    col = lambda v: tf.RaggedTensor.from_tensor(tf.fill(tf.stack([nrows, 1]), tf.constant(v, tf.int32)))  # noqa: E731
    same = lambda rt, v: rt.with_flat_values(tf.fill(tf.shape(rt.flat_values), tf.constant(v, tf.int32)))  # noqa: E731
    id_parts = [a, col(SEP_ID)]
    seg_parts = [same(a, SEG_ID_A), col(SEG_ID_A)]
    if pair:
        sep_b = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.math.count_nonzero(new_b > 0)], tf.constant(SEP_ID, tf.int32)),
            tf.cast(new_b > 0, tf.int64))  # [B, (0|1)] B's <sep> only where B kept tokens
        id_parts += [b, sep_b]
        seg_parts += [same(b, SEG_ID_B), same(sep_b, SEG_ID_B)]
    id_parts.append(col(CLS_ID))
    seg_parts.append(col(SEG_ID_CLS))
    ids = tf.concat(id_parts, axis=1)  # [B, (len)]
    segs = tf.concat(seg_parts, axis=1)  # [B, (len)]
    n_pad = T - ids.row_lengths()  # [B]
    dense_ids = ids.to_tensor(default_value=PAD_INPUT_ID, shape=[None, T])  # [B, T] right-padded
    dense_segs = segs.to_tensor(default_value=SEG_ID_PAD, shape=[None, T])  # [B, T]
    positions = tf.range(T, dtype=tf.int64)[None, :]  # [1, T]
    # Rotate each row right by its pad count: position j reads (j - n_pad) mod T, which for
    # j < n_pad lands in the right-padding region.
    src = (positions - n_pad[:, None]) % T  # [B, T]
    input_ids = tf.gather(dense_ids, src, batch_dims=1)  # [B, T]
    seg_ids = tf.gather(dense_segs, src, batch_dims=1)  # [B, T]
    input_mask = tf.cast(positions < n_pad[:, None], tf.float32)  # [B, T]
    return input_ids, input_mask, seg_ids


def _as_ragged_ids(x, name):
    """int32 ragged ``[B, (n)]``; a dense ``[B, n]`` tensor counts as rows of full length n."""
    if not isinstance(x, tf.RaggedTensor):
        x = tf.convert_to_tensor(x)
        if x.shape.rank != 2:
            raise ValueError(f"pack_ids_tf: {name} must be a [batch, (tokens)] RaggedTensor, got shape {x.shape}.")
        x = tf.RaggedTensor.from_tensor(x)
    if x.ragged_rank != 1 or x.shape.rank != 2:
        raise ValueError(f"pack_ids_tf: {name} must be a [batch, (tokens)] RaggedTensor with one ragged "
                         f"dimension, got shape {x.shape} (ragged_rank {x.ragged_rank}).")
    if not x.dtype.is_integer:
        raise ValueError(f"pack_ids_tf: {name} must hold integer token ids, got {x.dtype.name}.")
    return tf.cast(x, tf.int32)


def _ragged_prefix(rt, lengths):
    """First ``lengths[i]`` values of each row of a ragged-rank-1 tensor."""
    lengths = tf.cast(lengths, tf.int64)
    starts = rt.row_starts()  # [B]
    take = tf.ragged.range(starts, starts + lengths)  # [B, (k)]
    return tf.RaggedTensor.from_row_lengths(tf.gather(rt.values, take.flat_values), lengths)
