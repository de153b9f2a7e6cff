"""In-graph paragraph preparation for the SQuAD SavedModel: a raw context -> its
SentencePiece piece ids and, per piece, its first and last raw character -- the same result
as the Python pipeline's :func:`xlnet_tf.squad.alignment.prepare_paragraph`, as TensorFlow
ops (:class:`ContextAligner`).  :mod:`xlnet_tf.squad.export` builds the windows and picks
the answers from it.

1. **Pieces.**  ``preprocess_text`` of the context, then the SentencePiece ids exactly as
   the Python ``encode_ids`` (``tensorflow_text.FastSentencepieceTokenizer`` + the
   digit-comma rule, :mod:`xlnet_tf.tokenization.in_graph`).
2. **Piece character spans in the preprocessed text.**  The fast tokenizer gives no
   offsets, so ``tensorflow_text.SentencepieceTokenizer.tokenize_with_offsets`` (same
   model) tokenizes the text a second time.  The two can break exact score ties
   differently (``000`` as ``0|00`` or ``00|0``), but never across whitespace, so the
   pieces are compared word by word: pieces equal to the second tokenizer's, counted from
   the word's start or from its end, take its offsets; the pieces between them (a tie
   broken the other way) are laid out by their lengths.  A piece split by the digit-comma
   rule gives the comma its last character and lays the re-encoded digits out before it.
   Characters that SentencePiece's own normalizer deletes or turns into a word boundary
   (U+FEFF, U+200E, ...; found by tokenizing ``"a" + c + "a"``) are kept out of the spans,
   as they are absent from the Python pipeline's concatenated pieces.
3. **Preprocessed character -> raw character.**  ``preprocess_text`` is character-local
   except for whitespace (runs collapse to one space, edges are stripped) and the
   two-character quotes ````/''`` -> ``"``.  Each raw character is therefore preprocessed on
   its own (the quote pairs first rewritten to ``"`` + a combining mark that preprocessing
   deletes, which keeps the character count), giving how many preprocessed characters it
   produces; whitespace produces one space for the first character of an inner run and
   nothing otherwise.  Repeating each raw index by that count maps every preprocessed
   character to its raw character.
4. **The original's alignment rules.**  The Python pipeline aligns the raw text and the
   pieces with a banded LCS where a raw character matches when its own
   ``preprocess_text`` equals the piece character, and maps unmatched piece characters
   with ``convert_index`` (start -> one past the previous matched raw character, end -> one
   before the next, when there is a gap).  Here a preprocessed character is "matched" when
   it is the single output of a raw character equal to it, and the same ``convert_index``
   rules run as tensor ops (cumulative counts + gathers).  The LCS picks this "obvious"
   alignment except where a character that preprocessing rewrote sits next to an equal
   character it could match instead (three backticks in a row: the LCS matches the
   backtick piece with the FIRST raw backtick; an ellipsis followed by a period).
   The piece ids and both maps equal the Python pipeline's on all 2,067 contexts of SQuAD
   1.1 dev and all 131 contexts of the SQuAD 2.0 dev sample files
   (``tests/squad/test_squad_export.py``, ``bench/bench_squad_infer.py --check_alignment``).
"""
import tensorflow as tf
import tensorflow_text as tf_text

from xlnet_tf.tokenization import tokenizer as tok_lib
from xlnet_tf.tokenization.in_graph import (InGraphSentencePiece, _WHITESPACE, _read_model_proto,
                                            _split_digit_comma_pieces, preprocess_text)

# A combining mark: preprocess_text deletes it (accents are stripped), so rewriting a quote
# pair "``" as '"' + _MARK keeps one raw character per output position.
_MARK = "\u0301"
WS_CLASS = f"[{_WHITESPACE}]"


def _next_true(mask, pos):
    """Smallest ``q >= pos`` with ``mask[q]`` (``len(mask)`` when there is none), for
    every ``pos`` (clipped to ``[0, len]``)."""
    n = tf.size(mask)
    where = tf.concat([tf.cast(tf.where(mask)[:, 0], tf.int32), [n]], 0)      # [A + 1]
    before = tf.concat([tf.cumsum(tf.cast(mask, tf.int32), exclusive=True),
                        [tf.reduce_sum(tf.cast(mask, tf.int32))]], 0)         # [n + 1]
    return tf.gather(where, tf.gather(before, tf.clip_by_value(pos, 0, n)))


def _prev_true(mask, pos):
    """Largest ``q <= pos`` with ``mask[q]`` (-1 when there is none)."""
    n = tf.size(mask)
    where = tf.concat([[-1], tf.cast(tf.where(mask)[:, 0], tf.int32)], 0)     # [1 + A]
    upto = tf.cumsum(tf.cast(mask, tf.int32))                                 # [n] inclusive
    upto = tf.concat([[0], upto], 0)                                          # [n + 1]
    return tf.gather(where, tf.gather(upto, tf.clip_by_value(pos + 1, 0, n)))


class ContextAligner(tf.Module):
    """In-graph paragraph preparation: raw context -> piece ids and, per piece, its first
    and last raw character (``tok_start_to_orig`` / ``tok_end_to_orig`` of the Python
    pipeline).  See the module docstring."""

    def __init__(self, spiece_model, lower=False, name="context_aligner"):
        super().__init__(name=name)
        proto = _read_model_proto(spiece_model)
        tok_lib.Tokenizer.from_serialized_proto(proto)        # clear errors for a bad model
        self.lower = bool(lower)
        self.sp = InGraphSentencePiece(proto)
        self.offsets_tokenizer = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)
        self.underline = tf.constant(tok_lib.SPIECE_UNDERLINE)

    # -------------------------------------------------------------- raw <-> preprocessed
    def _char_map(self, raw, text):
        """For preprocessed ``text`` of ``raw`` (scalar strings): per preprocessed char its
        raw index and whether it is "matched" (module docstring, step 3-4).
        Returns (raw_of_p [Np], matched [Np] bool, text_chars [Np], n_raw)."""
        raw_chars = tf.strings.unicode_split(raw, "UTF-8")                    # [N]
        n_raw = tf.size(raw_chars)
        marked = tf.strings.regex_replace(raw, "``", '"' + _MARK)
        marked = tf.strings.regex_replace(marked, "''", '"' + _MARK)
        marked_chars = tf.strings.unicode_split(marked, "UTF-8")              # [N]
        own = preprocess_text(raw_chars, lower=self.lower, remove_space=False)      # [N]
        produced = preprocess_text(marked_chars, lower=self.lower, remove_space=False)
        out_len = tf.strings.length(produced, unit="UTF8_CHAR")               # [N]
        is_ws = tf.strings.regex_full_match(raw_chars, WS_CLASS)             # [N]
        solid = tf.cast(tf.logical_not(is_ws), tf.int32)                      # [N]
        has_before = tf.cumsum(solid, exclusive=True) > 0                     # [N]
        has_after = tf.cumsum(solid, exclusive=True, reverse=True) > 0        # [N]
        prev_ws = tf.concat([[False], is_ws[:-1]], 0)                         # [N]
        first_inner = is_ws & ~prev_ws & has_before & has_after               # [N]
        out_len = tf.where(is_ws, tf.cast(first_inner, tf.int32), out_len)    # [N]
        raw_of_p = tf.repeat(tf.range(n_raw), out_len)                        # [Np]
        text_chars = tf.strings.unicode_split(text, "UTF-8")                  # [Np']
        n_p = tf.size(text_chars)
        # the counts add up to len(text) by construction; guard anyway (never index out)
        raw_of_p = tf.concat([raw_of_p, tf.fill([tf.maximum(n_p - tf.size(raw_of_p), 0)],
                                                tf.maximum(n_raw - 1, 0))], 0)[:n_p]
        matched = tf.equal(tf.gather(own, raw_of_p), text_chars)              # [Np]
        return raw_of_p, matched, text_chars, n_raw

    @staticmethod
    def _convert(count, matched_raw, n_matched, n_raw, is_start):
        """``convert_index`` for an unmatched position preceded by ``count`` matched ones:
        front = the count-th matched raw index (1-based), rear = the next one."""
        padded = tf.concat([matched_raw, [0]], 0)
        has_f = count >= 1
        has_r = count < n_matched
        f = tf.gather(padded, tf.maximum(count - 1, 0))
        r = tf.gather(padded, tf.minimum(count, n_matched))
        gap = r > f + 1
        if is_start:
            both = tf.where(gap, f + 1, r)
            only_r = tf.where(r >= 1, tf.zeros_like(r), r)
            only_f = tf.where(f < n_raw - 1, f + 1, f)
            none = tf.zeros_like(r)
        else:
            both = tf.where(gap, r - 1, f)
            only_r = tf.where(r >= 1, r - 1, r)
            only_f = tf.where(f < n_raw - 1, tf.fill(tf.shape(f), n_raw - 1), f)
            none = tf.fill(tf.shape(r), n_raw - 1)
        return tf.where(has_f & has_r, both,
                        tf.where(has_r, only_r, tf.where(has_f, only_f, none)))

    def _normalizer_classes(self, chars):
        """How SentencePiece's own normalizer treats each character: ``deleted`` when
        ``"a" + c + "a"`` tokenizes as ``"aa"`` and ``spacey`` when it tokenizes as ``"a a"``
        (e.g. U+200B, U+FEFF become word boundaries).  A plain space is neither."""
        unique, index = tf.unique(chars)                                      # [U], [Np]

        def key(texts):
            return tf.strings.reduce_join(tf.strings.as_string(self.sp.tokenize(texts)),
                                          axis=-1, separator=",")             # [n]

        probe = key(tf.strings.join(["a", unique, "a"]))                      # [U]
        base = key(tf.constant(["aa", "a a"]))                                # [2]
        not_space = tf.not_equal(unique, " ")
        deleted = tf.equal(probe, base[0]) & not_space                       # [U]
        spacey = tf.equal(probe, base[1]) & not_space                         # [U]
        return tf.gather(deleted, index), tf.gather(spacey, index)            # [Np] x 2

    # -------------------------------------------------------------- piece spans
    def _is_word_start(self, ids):
        pieces = self.sp.id_to_piece(ids)
        return tf.strings.substr(pieces, 0, 1, unit="UTF8_CHAR") == self.underline

    def _piece_byte_spans(self, text, fast_ids):
        """Byte spans ``[start, end)`` in ``text`` of the fast tokenizer's pieces (step 2).

        Per word (a ``▁`` piece and what follows it) the pieces are matched with the offset
        tokenizer's from the word's start and from its end; matched pieces take its offsets.
        Pieces in between (a tie broken the other way) are laid out by their byte lengths,
        right-aligned to the first matched piece after them (or the word's end)."""
        reg_ids, reg_start, reg_end = self.offsets_tokenizer.tokenize_with_offsets(text)
        reg_start = tf.cast(reg_start, tf.int32)                              # [n2]
        reg_end = tf.cast(reg_end, tf.int32)                                  # [n2]
        n2 = tf.size(reg_ids)
        word_f = tf.maximum(tf.cumsum(tf.cast(self._is_word_start(fast_ids), tf.int32)) - 1, 0)
        word_r = tf.maximum(tf.cumsum(tf.cast(self._is_word_start(reg_ids), tf.int32)) - 1, 0)
        n_words = tf.maximum(tf.reduce_max(tf.concat([word_f, word_r, [-1]], 0)) + 1, 1)

        def per_word_sum(x):                                                  # [n1] -> [W]
            return tf.math.unsorted_segment_sum(x, word_f, n_words)

        def within_word_cumsum(x, reverse=False):                             # [n1] inclusive
            total = per_word_sum(x)
            prefix = tf.cumsum(total, exclusive=True)
            inclusive = tf.cumsum(x) - tf.gather(prefix, word_f)
            if reverse:
                return tf.gather(total, word_f) - inclusive + x
            return inclusive

        count_f = per_word_sum(tf.ones_like(word_f))                          # [W]
        count_r = tf.math.unsorted_segment_sum(tf.ones_like(word_r), word_r, n_words)
        first_r = tf.cumsum(count_r, exclusive=True)                          # [W]
        cnt_r, fst_r = tf.gather(count_r, word_f), tf.gather(first_r, word_f)  # [n1]
        j = within_word_cumsum(tf.ones_like(word_f)) - 1                      # [n1]
        j_back = tf.gather(count_f, word_f) - 1 - j                           # [n1]
        reg_ids_p = tf.concat([reg_ids, [-1]], 0)
        reg_start_p = tf.concat([reg_start, [0]], 0)
        reg_end_p = tf.concat([reg_end, [0]], 0)
        idx_front = tf.where(j < cnt_r, fst_r + j, n2)                        # [n1]
        idx_back = tf.where(j_back < cnt_r, fst_r + cnt_r - 1 - j_back, n2)   # [n1]
        miss_front = tf.cast(tf.gather(reg_ids_p, idx_front) != fast_ids, tf.int32)
        miss_back = tf.cast(tf.gather(reg_ids_p, idx_back) != fast_ids, tf.int32)
        in_prefix = within_word_cumsum(miss_front) == 0                       # [n1]
        in_suffix = (within_word_cumsum(miss_back, reverse=True) == 0) & ~in_prefix
        middle = ~in_prefix & ~in_suffix

        # anchors of the middle part: end of the matched prefix, start of the matched suffix
        n_prefix = per_word_sum(tf.cast(in_prefix, tf.int32))                 # [W]
        n_suffix = per_word_sum(tf.cast(in_suffix, tf.int32))                 # [W]
        last_r = first_r + count_r - 1                                        # [W]
        word_lo = tf.where(count_r > 0, tf.gather(reg_start_p, tf.where(count_r > 0, first_r,
                                                                         n2)), 0)
        word_hi = tf.where(count_r > 0, tf.gather(reg_end_p, tf.maximum(last_r, 0)),
                           tf.strings.length(text))
        lo = tf.where(n_prefix > 0, tf.gather(reg_end_p, tf.maximum(first_r + n_prefix - 1, 0)),
                      word_lo)                                                # [W]
        hi = tf.where(n_suffix > 0, tf.gather(reg_start_p, tf.maximum(
            first_r + count_r - n_suffix, 0)), word_hi)                       # [W]
        surface = tf.strings.regex_replace(self.sp.id_to_piece(fast_ids),
                                           tok_lib.SPIECE_UNDERLINE, " ")
        nbytes = tf.where(middle, tf.strings.length(surface), 0)              # [n1]
        later = within_word_cumsum(nbytes, reverse=True) - nbytes             # [n1]
        mid_end = tf.gather(hi, word_f) - later
        mid_start = tf.maximum(mid_end - nbytes, tf.gather(lo, word_f))
        mid_end = tf.maximum(mid_end, mid_start)
        start = tf.where(in_prefix, tf.gather(reg_start_p, idx_front), tf.where(
            in_suffix, tf.gather(reg_start_p, idx_back), mid_start))
        end = tf.where(in_prefix, tf.gather(reg_end_p, idx_front), tf.where(
            in_suffix, tf.gather(reg_end_p, idx_back), mid_end))
        return start, end

    # -------------------------------------------------------------- one paragraph
    def align_one(self, raw):
        """Scalar raw context -> (piece ids [n] int32, tok_start_to_orig [n] int32,
        tok_end_to_orig [n] int32)."""
        text = preprocess_text(tf.reshape(raw, [1]), lower=self.lower)        # [1]
        fast_ids = self.sp.tokenize(text)[0]                                  # [n1]
        text = text[0]
        raw_of_p, matched, text_chars, n_raw = self._char_map(raw, text)     # [Np] x 3
        # characters the SentencePiece normalizer deletes or turns into a word boundary
        # have no character of their own in the Python pipeline's concatenated pieces
        deleted, spacey = self._normalizer_classes(text_chars)                # [Np] x 2
        matched = matched & ~deleted & ~spacey
        matched_i = tf.cast(matched, tf.int32)
        n_matched = tf.reduce_sum(matched_i)
        matched_raw = tf.boolean_mask(raw_of_p, matched)                      # [A]
        count_incl = tf.cumsum(matched_i)                                     # [Np]
        count_excl = tf.concat([[0], count_incl], 0)                          # [Np + 1]
        start_of_p = tf.where(matched, raw_of_p, self._convert(
            count_incl, matched_raw, n_matched, n_raw, True))                 # [Np]
        end_of_p = tf.where(matched, raw_of_p, self._convert(
            count_incl, matched_raw, n_matched, n_raw, False))                # [Np]

        # byte spans of the fast pieces -> char spans in the preprocessed text
        byte_start, byte_end = self._piece_byte_spans(text, fast_ids)         # [n1] x 2
        _, char_bytes = tf.strings.unicode_decode_with_offsets(text, "UTF-8")  # [Np]
        char_bytes = tf.cast(char_bytes, tf.int32)
        c_start = tf.searchsorted(char_bytes, byte_start, side="right") - 1   # [n1]
        c_last = tf.searchsorted(char_bytes, byte_end - 1, side="right") - 1  # [n1]
        c_start = tf.maximum(c_start, 0)
        c_last = tf.where(byte_end > byte_start, c_last, c_start - 1)
        # span edges: skip deleted characters; the ▁ of a word-initial piece is the real
        # space of the piece's leading boundary run when there is one (U+FEFF + " " -> " ")
        is_space = tf.equal(text_chars, " ")
        boundary = deleted | spacey | is_space
        next_kept = _next_true(~deleted, c_start)
        prev_kept = _prev_true(~deleted, c_last)
        next_space = _next_true(is_space, c_start)
        run_end = _next_true(~boundary, c_start)
        word_start = self._is_word_start(fast_ids)
        use_space = word_start & (next_space < run_end) & (next_space <= c_last)
        only_underline = tf.equal(self.sp.id_to_piece(fast_ids), tok_lib.SPIECE_UNDERLINE)
        new_start = tf.where(use_space, next_space, tf.where(
            (next_kept <= c_last) & ~word_start, next_kept, c_start))
        new_last = tf.where(use_space & only_underline, next_space, tf.where(
            (prev_kept >= c_start) & (c_last >= 0) & ~only_underline, prev_kept, c_last))
        c_start, c_last = new_start, new_last

        # digit-comma rule: per piece the row of its final pieces
        rows = _split_digit_comma_pieces(self.sp, tf.RaggedTensor.from_row_lengths(
            fast_ids, tf.ones_like(fast_ids, tf.int64)))                       # [n1, (q)]
        ids = rows.flat_values                                                # [n]
        row = tf.cast(rows.value_rowids(), tf.int32)                          # [n]
        row_len = tf.cast(rows.row_lengths(), tf.int32)                       # [n1]
        k = tf.range(tf.size(ids)) - tf.gather(tf.cast(rows.row_starts(), tf.int32), row)
        split = tf.gather(row_len, row) > 1                                   # [n]
        is_comma = split & tf.equal(k, tf.gather(row_len, row) - 1)
        lens = tf.where(is_comma, 1, tf.strings.length(self.sp.id_to_piece(ids),
                                                      unit="UTF8_CHAR"))       # [n]
        row_total = tf.math.segment_sum(lens, row)                            # [n1]
        later = tf.gather(row_total, row) - (tf.cumsum(lens) - tf.gather(
            tf.cumsum(row_total, exclusive=True), row))                       # [n]
        p_start, p_last = tf.gather(c_start, row), tf.gather(c_last, row)
        sub_last = p_last - later
        sub_start = tf.maximum(sub_last - lens + 1, p_start)
        span_start = tf.where(split, tf.where(k == 0, p_start, sub_start), p_start)  # [n]
        span_last = tf.where(split, sub_last, p_last)                         # [n]

        # raw indices with the original's rules; a leading ▁ without a character of its
        # own (the dummy prefix) is an unmatched position just before the span
        n_p = tf.size(raw_of_p)
        first_char = tf.gather(tf.concat([text_chars, [""]], 0), tf.minimum(span_start, n_p))
        virtual = self._is_word_start(ids) & tf.not_equal(first_char, " ") & (
            tf.equal(k, 0) | ~split)
        before = tf.gather(count_excl, tf.clip_by_value(span_start, 0, n_p))
        v_start = self._convert(before, matched_raw, n_matched, n_raw, True)
        v_end = self._convert(before, matched_raw, n_matched, n_raw, False)
        safe = lambda x: tf.clip_by_value(x, 0, tf.maximum(n_p - 1, 0))  # noqa: E731
        start_of_p_p = tf.concat([start_of_p, [0]], 0)
        end_of_p_p = tf.concat([end_of_p, [0]], 0)
        tok_start = tf.where(virtual | (span_start >= n_p), v_start,
                             tf.gather(start_of_p_p, safe(span_start)))
        tok_end = tf.where(span_last < span_start, v_end,
                           tf.gather(end_of_p_p, safe(span_last)))
        return ids, tok_start, tok_end

    def align(self, contexts):
        """Raw contexts ``[B]`` -> ragged ``(ids, tok_start_to_orig, tok_end_to_orig)``,
        each int32 ``[B, (n)]``."""
        spec = tf.RaggedTensorSpec(shape=[None], dtype=tf.int32, ragged_rank=0)
        return tf.map_fn(self.align_one, contexts, fn_output_signature=(spec, spec, spec))

