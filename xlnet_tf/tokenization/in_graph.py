"""In-graph XLNet tokenization (tensorflow-text): strings in, ragged int32 ids out.

The same pipeline as :mod:`xlnet_tf.tokenization.tokenizer` (``encode_ids(sp, preprocess_text(text))``,
with the rules declared in :mod:`xlnet_tf.tokenization.text`) written with TF string ops, so it runs inside ``tf.function``, ``tf.data`` and an exported
SavedModel (the SentencePiece model is embedded in the graph; nothing is read from Python
at call time):

1. whitespace: strip, collapse runs to one space   — ``tf.strings.regex_replace``
2. ``\\`\\``` and ``''`` → ``"``                        — ``tf.strings.regex_replace``
3. NFKD + delete combining characters             — ``tensorflow_text.normalize_utf8`` +
                                                    a regex over the combining characters
4. lower-case                                     — ``tf.strings.lower(encoding="utf-8")``
5. SentencePiece ids, digit–comma rule             — ``tensorflow_text.FastSentencepieceTokenizer``
                                                    + a vocabulary for id ↔ piece

Exactness: Python's ``str.split``/``str.strip``, ``unicodedata.combining`` and
``str.isdigit`` are not the same sets as RE2's ``\\s``, ``\\p{Mn}`` and ``\\d``
(e.g. ``\\p{Mn}`` misses combining marks of class Mc and includes class-0 marks; ``\\s``
misses U+00A0 and U+3000; ``\\d`` is ASCII only). The character classes used here are
therefore generated at import time from Python's own predicates, so the in-graph rules use
exactly the characters the Python rules use. NFKD (ICU vs. Python's ``unicodedata``) and
lower-casing (ICU vs. ``str.lower``) are checked against Python for every code point below
U+30000 by ``tests/tokenization/test_tf_tokenization.py``: they differ only on characters newer than
Python 3.11's Unicode 14.0 tables (ICU decomposes 118 code points Python still calls
unassigned, and ``tf.strings.lower`` lacks 40 capital letters added in Unicode 14.0).

Known residual difference: SentencePiece segmentations with exactly equal scores (same
pieces in another order, e.g. ``0 00`` vs ``00 0`` for ``000``) can be broken differently
by tensorflow-text's SentencePiece build and the ``sentencepiece`` package. On 257,915
lines of WikiText-2, Gutenberg, Shakespeare, SQuAD, IMDB and GLUE text
(``bench/bench_tokenization.py``) cased ids are identical on every line; lower-cased, one
line differs by such a tie.

Subword sampling (``sample=True``) is Python-only.
"""
import base64
import os

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from xlnet_tf.tokenization import text as text_rules
from xlnet_tf.tokenization import tokenizer as tokenization

_SPIECE_UNDERLINE = tokenization.SPIECE_UNDERLINE


def _char_class(predicate):
    """RE2 character class (without brackets) of every code point where ``predicate(chr(cp))``."""
    ranges = []
    start = prev = None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:  # surrogates cannot occur in valid UTF-8
            continue
        if predicate(chr(cp)):
            if start is None:
                start = cp
            elif cp != prev + 1:
                ranges.append((start, prev))
                start = cp
            prev = cp
    if start is not None:
        ranges.append((start, prev))
    return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)


# Built once at import from the running Python's Unicode tables, with the predicates of the
# Python rules (text.py, and str.isdigit of the digit-comma rule in tokenizer.py).
_WHITESPACE = _char_class(text_rules.is_space)                              # str.split()/strip()
_COMBINING = _char_class(text_rules.is_accent)                             # accents etc.
_DIGIT = _char_class(str.isdigit)                                          # str.isdigit()

_WHITESPACE_RUN = f"[{_WHITESPACE}]+"
_EDGE_SPACE = "^ | $"  # after the collapse an edge run is exactly one ASCII space
_COMBINING_RUN = f"[{_COMBINING}]+"
_DIGIT_COMMA_PIECE = f"(?s).*[{_DIGIT}],"  # full match: last char ',', second-to-last a digit
_STARTS_WITH_UNDERLINE = f"(?s){_SPIECE_UNDERLINE}.*"


def preprocess_text(texts, lower=False, remove_space=True, keep_accents=False):
    """In-graph :func:`xlnet_tf.tokenization.text.preprocess_text` on a string tensor (any shape).

    Args:
      texts: ``tf.string`` tensor of UTF-8 text.
    Returns:
      ``tf.string`` tensor of the same shape.
    """
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    if remove_space:
        texts = tf.strings.regex_replace(texts, _WHITESPACE_RUN, " ")
        texts = tf.strings.regex_replace(texts, _EDGE_SPACE, "")
    texts = text_rules.replace_literals_tf(texts, text_rules.QUOTE_REPLACEMENTS)
    if not keep_accents:
        texts = tf_text.normalize_utf8(texts, "NFKD")
        texts = tf.strings.regex_replace(texts, _COMBINING_RUN, "")
    if lower:
        texts = _lower_utf8(texts)
    return texts


def _lower_utf8(texts):
    """``str.lower`` in-graph: ``tf.strings.lower(encoding="utf-8")`` (ICU full case mapping).

    That op stops at the first NUL character, so the text is split at NULs, each part is
    lower-cased and the NULs are put back.
    """
    shape = tf.shape(texts)
    flat = tf.reshape(texts, [-1])                                             # [N]
    parts = tf.strings.split(flat, sep="\x00")                                # [N, (S)]
    lowered = tf.strings.lower(parts.flat_values, encoding="utf-8")            # [M]
    position = tf.range(tf.shape(lowered, out_type=parts.row_splits.dtype)[0])
    is_last = tf.equal(position, tf.gather(parts.row_limits(), parts.value_rowids()) - 1)
    with_nul = tf.strings.join([lowered, tf.where(is_last, "", "\x00")])      # [M]
    joined = tf.strings.reduce_join(parts.with_flat_values(with_nul), axis=-1)  # [N]
    return tf.reshape(joined, shape)


class InGraphSentencePiece(tf.Module):
    """SentencePiece in TF ops: text → ids with ``tensorflow_text.FastSentencepieceTokenizer``,
    plus id → piece (a constant vocabulary) and piece → id (a static hash table, unknown → 0,
    like ``PieceToId``).

    Why the "fast" tokenizer: ``tensorflow_text.SentencepieceTokenizer`` breaks exact score
    ties of the Viterbi search differently from the ``sentencepiece`` Python package (e.g.
    ``000`` → ``00 0`` vs ``0 00`` when ``0`` and ``00`` are pieces): it disagreed on 4 of
    the first 2000 WikiText lines and 17 of 288 SQuAD contexts with the test model. The fast
    tokenizer agrees on all of them (see the module docstring for the remaining ties).

    Pieces returned by :meth:`id_to_piece` are vocabulary entries, so an unknown-character
    piece reads ``<unk>`` here while Python's ``EncodeAsPieces`` gives its surface text;
    ids are identical.

    A ``tf.Module``: its hash table is a TF resource that SavedModel export must see, so
    keep it as an attribute of a tracked object (a Keras layer or another ``tf.Module``).
    """

    def __init__(self, model_proto, name="sentencepiece"):
        super().__init__(name=name)
        from sentencepiece import sentencepiece_model_pb2
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(model_proto)
        if proto.trainer_spec.model_type != proto.trainer_spec.UNIGRAM:
            raise ValueError("In-graph XLNet tokenization supports unigram SentencePiece models "
                             f"only (XLNet's type); this model has type {proto.trainer_spec.model_type}.")
        pieces = [p.piece for p in proto.pieces]
        self.vocab_size = len(pieces)
        self.tokenizer = tf_text.FastSentencepieceTokenizer(model_proto)
        self.vocab = tf.constant(pieces, dtype=tf.string)                      # [V]
        self.piece_to_id_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(pieces, dtype=tf.string),
                tf.range(len(pieces), dtype=tf.int32)),
            default_value=tokenization.UNK_ID)

    def tokenize(self, texts):
        """Ids of strings ``[N]`` → ragged int32 ``[N, (P)]`` (``EncodeAsIds``)."""
        ids = self.tokenizer.tokenize(texts)                                   # [N, (P)]
        return tf.cast(ids, tf.int32).with_row_splits_dtype(tf.int64)

    def id_to_piece(self, ids):
        return tf.gather(self.vocab, ids)

    def piece_to_id(self, pieces):
        return self.piece_to_id_table.lookup(pieces)


def _split_digit_comma_pieces(sp, ids):
    """The digit–comma rule on ragged ids ``[B, (P)]`` → ragged ids ``[B, (P')]``.

    A piece like ``▁2000,`` is replaced by the pieces of ``2000`` (re-encoded with every
    ``▁`` removed; a dummy-prefix ``▁`` added by the re-encoding is dropped when the
    original piece did not start with ``▁`` — the whole first piece if it was only ``▁``)
    followed by a ``,`` piece. Only the affected pieces are re-encoded. Pieces whose ``▁``
    was stripped are mapped back to ids with ``PieceToId`` semantics (absent → ``<unk>``).
    """
    flat_ids = ids.flat_values                                                 # [N]
    flat = sp.id_to_piece(flat_ids)                                            # [N]
    hit = tf.strings.regex_full_match(flat, _DIGIT_COMMA_PIECE)                # [N]
    hit_idx = tf.cast(tf.where(hit)[:, 0], tf.int32)                           # [K]
    keep_idx = tf.cast(tf.where(tf.logical_not(hit))[:, 0], tf.int32)          # [N-K]

    hit_pieces = tf.gather(flat, hit_idx)                                      # [K]
    bare = tf.strings.regex_replace(hit_pieces, ",$", "")
    bare = tf.strings.regex_replace(bare, _SPIECE_UNDERLINE, "")
    sub_ids = sp.tokenize(bare)                                                # [K, (r)]
    had_underline = tf.strings.regex_full_match(hit_pieces, _STARTS_WITH_UNDERLINE)  # [K]

    # Drop the leading ▁ of each row's first re-encoded piece when the original had none.
    sub_vals = sp.id_to_piece(sub_ids.flat_values)                             # [R]
    row_of_val = sub_ids.value_rowids()                                        # [R]
    is_first = tf.equal(tf.range(tf.shape(sub_vals)[0], dtype=row_of_val.dtype),
                        tf.gather(sub_ids.row_starts(), row_of_val))           # [R]
    fix = tf.logical_and(is_first, tf.logical_not(tf.gather(had_underline, row_of_val)))
    fix = tf.logical_and(fix, tf.strings.regex_full_match(sub_vals, _STARTS_WITH_UNDERLINE))
    stripped = tf.strings.regex_replace(sub_vals, "^" + _SPIECE_UNDERLINE, "")  # [R]
    fixed_ids = tf.where(fix, sp.piece_to_id(stripped), sub_ids.flat_values)   # [R]
    keep_val = tf.logical_or(tf.logical_not(fix), tf.strings.length(stripped) > 0)
    sub_ids = tf.ragged.boolean_mask(sub_ids.with_flat_values(fixed_ids),
                                     sub_ids.with_flat_values(keep_val))       # [K, (r')]
    comma_id = sp.piece_to_id(tf.constant(","))
    comma = tf.RaggedTensor.from_tensor(
        tf.fill(tf.stack([tf.shape(hit_idx)[0], 1]), comma_id))                # [K, 1]
    sub_ids = tf.concat([sub_ids, comma], axis=1)                              # [K, (r'+1)]

    # Rows of replacement ids for every flat piece, back in the original order.
    unchanged = tf.RaggedTensor.from_tensor(
        tf.expand_dims(tf.gather(flat_ids, keep_idx), 1))                      # [N-K, 1]
    stacked = tf.concat([unchanged, sub_ids], axis=0)                          # [N, (q)] permuted
    order = tf.math.invert_permutation(tf.concat([keep_idx, hit_idx], axis=0))  # [N]
    replacement = tf.gather(stacked, order)                                    # [N, (q)]
    return ids.with_flat_values(replacement).merge_dims(1, 2)                  # [B, (P')]


def encode_ids(sp, texts):
    """Ids of already-preprocessed ``texts`` ``[B]`` with the digit–comma rule → ragged int32 ``[B, (P)]``.

    Args:
      sp: an :class:`InGraphSentencePiece`.
    """
    ids = sp.tokenize(texts)                                                   # [B, (P)]
    return _split_digit_comma_pieces(sp, ids)


def encode_pieces(sp, texts):
    """Vocabulary pieces of :func:`encode_ids` → ragged string ``[B, (P)]`` (unknown → ``<unk>``)."""
    ids = encode_ids(sp, texts)
    return ids.with_flat_values(sp.id_to_piece(ids.flat_values))


def _read_model_proto(spiece_model):
    if isinstance(spiece_model, (bytes, bytearray)):
        return bytes(spiece_model)
    path = os.fspath(spiece_model)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"SentencePiece model file {path!r} does not exist (or is not a file). Pass the "
            f"'spiece.model' that came with the checkpoint, or its bytes.")
    with open(path, "rb") as f:
        return f.read()


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetTokenizerLayer(keras.layers.Layer):
    """Keras layer: string tensor ``[B]`` → ``tf.RaggedTensor`` of int32 ids ``[B, (P)]``.

    Applies XLNet's text rules and SentencePiece model in-graph with exactly the result of
    ``xlnet_tf.tokenization.tokenizer.Tokenizer(...).encode_ids`` for each string. The model proto
    is embedded in the graph (a TensorFlow resource owned by this layer), so the layer can
    be called inside ``tf.function``/``tf.data`` and exported, e.g.::

        layer = XLNetTokenizerLayer("spiece.model")
        archive = keras.export.ExportArchive()
        archive.track(layer)
        archive.add_endpoint("tokenize", layer.call,
                             input_signature=[tf.TensorSpec([None], tf.string)])
        archive.write_out("tokenizer_savedmodel")

    It is not meant for symbolic Keras functional models (those do not carry ragged
    string pipelines); pack the ids into model features in ``tf.data`` instead.

    Args:
      spiece_model: path of a SentencePiece ``.model`` file, or its bytes.
      lower: lower-case (the original ``--uncased``).
      keep_accents: keep combining characters.
    """

    def __init__(self, spiece_model, lower=False, keep_accents=False, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        model_proto = _read_model_proto(spiece_model)
        # Validates the proto and the special-symbol ids (clear Python errors, not TF ones).
        checker = tokenization.Tokenizer.from_serialized_proto(model_proto)
        self.vocab_size = checker.vocab_size
        self.lower = bool(lower)
        self.keep_accents = bool(keep_accents)
        self._model_proto = model_proto
        self.sp = InGraphSentencePiece(model_proto)
        self.built = True

    def call(self, texts):
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank is not None and texts.shape.rank != 1:
            raise ValueError(f"XLNetTokenizerLayer expects a string tensor of shape [B], got shape "
                             f"{texts.shape}. Reshape to a vector (e.g. tf.reshape(x, [-1])).")
        texts = preprocess_text(texts, lower=self.lower, keep_accents=self.keep_accents)  # [B]
        return encode_ids(self.sp, texts)                                      # [B, (P)] int32

    def tokenize_pieces(self, texts):
        """Pieces (strings) instead of ids, ``[B]`` → ragged ``[B, (P)]`` (for inspection)."""
        texts = preprocess_text(tf.convert_to_tensor(texts, dtype=tf.string),
                                lower=self.lower, keep_accents=self.keep_accents)
        return encode_pieces(self.sp, texts)

    def serialized_model_proto(self):
        return self._model_proto

    def get_config(self):
        config = super().get_config()
        config.update({
            "spiece_model": None,
            "spiece_model_b64": base64.b64encode(self._model_proto).decode("ascii"),
            "lower": self.lower,
            "keep_accents": self.keep_accents,
        })
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**spiece_model_from_config(config))


def spiece_model_from_config(config):
    """A layer config with its ``spiece_model_b64`` (the SentencePiece model stored in
    ``get_config``) decoded back into the ``spiece_model`` bytes argument."""
    config = dict(config)
    b64 = config.pop("spiece_model_b64", None)
    if b64 is not None:
        config["spiece_model"] = base64.b64decode(b64)
    return config
