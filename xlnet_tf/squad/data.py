"""SQuAD v1.1 / v2.0 input pipeline: JSON → examples → features → TFRecords → tf.data.

This follows the original ``run_squad.py`` (spec section 6.2) step by step:

1. ``query = encode_ids(preprocess_text(question, lower=uncased))[:max_query_length]``.
2. ``pieces = encode_pieces(preprocess_text(paragraph, lower=uncased))``.
3. Piece bookkeeping over ``tok_cat_text = "".join(pieces).replace("▁", " ")``: each piece's
   first/last character offset and a char → piece map.
4. A character alignment between the RAW paragraph and ``tok_cat_text`` (banded LCS, see
   :func:`align_chars`), giving ``orig_to_chartok`` / ``chartok_to_orig``.
5. ``tok_start_to_orig_index`` / ``tok_end_to_orig_index`` per piece with
   :func:`convert_index`; post-processing cuts answers out of the raw paragraph with them.
6. Training labels: the answer's character span → piece span.
7. Sliding windows (``doc_stride``) with the ``token_is_max_context`` rule.
8. Layout ``P <sep> Q <sep> <cls>`` + RIGHT padding (pad id 0, input_mask 1 = padding,
   segment P=0 Q=1 CLS=2 PAD=3), ``p_mask`` 1 = cannot be an answer boundary (the CLS
   position has p_mask 0 so "no answer" can point there).
9. Labels relative to the window; answer outside the window or unanswerable → both
   positions = ``cls_index`` and ``is_impossible`` = 1.
10. ``unique_id`` from 1000000000, one per feature, in example order.

Speed. The original aligned characters with a pure-Python banded LCS that called
``preprocess_text`` (an NFKD normalisation) in every DP cell and re-ran the whole alignment
for every *question* of a paragraph; preprocessing SQuAD 2.0 train took hours. Here the
alignment gives exactly the same result (same band, same tie-breaking, same zero cells
outside the band, same retry rule — tested against a cell-by-cell re-implementation of the
spec) but is computed

* once per distinct paragraph (SQuAD has ~5 questions per paragraph),
* with each raw character normalised once instead of once per cell,
* with flat per-row value lists (narrow bands) or numpy row operations (wide bands, where
  a row is a running maximum) instead of a float matrix and a dict of back-pointers; the
  back-pointers are re-derived from the values only along the back-trace path,
* in a multiprocessing pool over paragraphs (``num_workers``, default all cores).

Caching. :func:`load_or_build_features` writes the records plus a settings manifest
(SentencePiece sha256, lengths, ``uncased``, source file size + sha256, counts) beside them
and reuses them only when the manifest matches; the prediction side also gets the examples
and the Python feature objects (pickled next to the records). All files are written to a
temporary name and renamed.
"""
import collections
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import random
import tempfile
import time

import numpy as np

from xlnet_tf.tokenization import tokenizer as tok_lib

logger = logging.getLogger(__name__)

__all__ = [
    "SquadExample",
    "InputFeatures",
    "ExampleList",
    "FeatureList",
    "read_squad_examples",
    "align_chars",
    "convert_index",
    "convert_examples_to_features",
    "write_squad_features",
    "load_or_build_features",
    "squad_dataset",
    "feature_spec",
    "FIRST_UNIQUE_ID",
]

FIRST_UNIQUE_ID = 1000000000
SEG_ID_P = tok_lib.SQUAD_SEG_ID_P
SEG_ID_Q = tok_lib.SQUAD_SEG_ID_Q
SEG_ID_CLS = tok_lib.SQUAD_SEG_ID_CLS
SEG_ID_PAD = tok_lib.SQUAD_SEG_ID_PAD
# The fine-tuning scripts pad with id 0 (<unk>), not <pad>=5; padding is masked anyway.
PAD_TOKEN_ID = 0
CACHE_FORMAT_VERSION = 1


# ==========================================================================================
# Examples
# ==========================================================================================
class SquadExample:
    """One question over one paragraph (the original's ``SquadExample``).

    Attributes:
      qas_id: the question id.
      question_text: the question.
      paragraph_text: the RAW context (answers are cut out of this text).
      orig_answer_text: training answer text ("" for impossible; None at prediction).
      start_position: training answer character offset (-1 for impossible; None at prediction).
      is_impossible: True for SQuAD 2.0 unanswerable questions.
      answers: all gold answers as ``[(text, answer_start), ...]`` (empty if unanswerable);
        kept for evaluation and tests, not used to build features.
    """
    __slots__ = ("qas_id", "question_text", "paragraph_text", "orig_answer_text",
                 "start_position", "is_impossible", "answers")

    def __init__(self, qas_id, question_text, paragraph_text, orig_answer_text=None,
                 start_position=None, is_impossible=False, answers=()):
        self.qas_id = qas_id
        self.question_text = question_text
        self.paragraph_text = paragraph_text
        self.orig_answer_text = orig_answer_text
        self.start_position = start_position
        self.is_impossible = is_impossible
        self.answers = list(answers)

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    def __repr__(self):
        return (f"SquadExample(qas_id={self.qas_id!r}, question={self.question_text[:40]!r}, "
                f"start_position={self.start_position}, is_impossible={self.is_impossible})")


class ExampleList(list):
    """A list of :class:`SquadExample` plus what reading skipped.

    Attributes:
      num_bad_offsets: answers whose ``answer_start`` does not point at their text.
      num_empty_context: questions skipped because their context is empty.
      skipped_qas_ids: ids of questions that were skipped.
    """
    num_bad_offsets = 0
    num_empty_context = 0
    skipped_qas_ids = ()


def _answer_matches(context, text, start):
    return isinstance(start, int) and 0 <= start and context[start:start + len(text)] == text


def read_squad_examples(input_file, is_training):
    """Reads a SQuAD v1.1 or v2.0 JSON file into :class:`SquadExample` objects.

    * ``is_impossible`` is optional (SQuAD 1.1 has none) and defaults to False (the
      original required it, so it could not train on 1.1 — zihangdai/xlnet#58).
    * Training uses the first gold answer (SQuAD train files have exactly one; dev files
      list several, the first is taken). Impossible → ``start_position`` -1, text "".
    * An answer whose ``answer_start`` does not point at its text is logged and counted
      (``num_bad_offsets``). At training time the question is skipped; at prediction time the
      question is kept (its answers are not used to build features) and the bad answer is
      left out of ``answers``.
    * A question whose context is empty or only whitespace is logged and skipped.

    Returns:
      an :class:`ExampleList` (a list) with the counts as attributes.
    """
    path = os.fspath(input_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SQuAD file {path!r} does not exist (check --train_file/--predict_file).")
    with open(path, encoding="utf-8") as f:
        try:
            obj = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"SQuAD file {path!r} is not valid JSON ({e}).") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        found = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"SQuAD file {path!r} has no top-level 'data' list (found {found}); "
                         f"pass the official SQuAD v1.1/v2.0 JSON.")

    examples = ExampleList()
    skipped, num_bad, num_empty = [], 0, 0
    for a_i, entry in enumerate(obj["data"]):
        for p_i, paragraph in enumerate(entry.get("paragraphs", ())):
            if "context" not in paragraph or "qas" not in paragraph:
                raise ValueError(f"SQuAD file {path!r}: data[{a_i}].paragraphs[{p_i}] lacks "
                                 f"'context' or 'qas'.")
            paragraph_text = paragraph["context"]
            empty = not paragraph_text.strip()
            if empty and paragraph["qas"]:
                logger.warning("%s: data[%d].paragraphs[%d] has an empty context; skipping its "
                               "%d question(s).", path, a_i, p_i, len(paragraph["qas"]))
            for qa in paragraph["qas"]:
                qas_id = qa["id"]
                if empty:
                    num_empty += 1
                    skipped.append(qas_id)
                    continue
                is_impossible = bool(qa.get("is_impossible", False))
                answers = []
                bad = False
                for ans in qa.get("answers", ()):
                    text, start = ans["text"], ans["answer_start"]
                    if _answer_matches(paragraph_text, text, start):
                        answers.append((text, start))
                    else:
                        bad = True
                        num_bad += 1
                        logger.warning(
                            "%s: question %s: answer %r does not occur at answer_start=%s "
                            "(the context there reads %r).", path, qas_id, text, start,
                            paragraph_text[start:start + len(text)] if isinstance(start, int) else None)
                orig_answer_text, start_position = None, None
                if is_training:
                    if is_impossible:
                        orig_answer_text, start_position = "", -1
                    else:
                        if bad or not qa.get("answers"):
                            if not bad:
                                logger.warning("%s: question %s is answerable but has no answers; "
                                               "skipping it.", path, qas_id)
                            skipped.append(qas_id)
                            continue
                        orig_answer_text, start_position = answers[0]
                examples.append(SquadExample(
                    qas_id=qas_id, question_text=qa["question"], paragraph_text=paragraph_text,
                    orig_answer_text=orig_answer_text, start_position=start_position,
                    is_impossible=is_impossible, answers=answers))
    examples.num_bad_offsets = num_bad
    examples.num_empty_context = num_empty
    examples.skipped_qas_ids = tuple(skipped)
    if num_bad or skipped:
        logger.warning("%s: read %d questions; %d answer offset(s) did not match the text; "
                       "%d question(s) skipped.", path, len(examples), num_bad, len(skipped))
    return examples


# ==========================================================================================
# Character alignment (spec 6.2 step 4)
# ==========================================================================================
# Back-pointer codes. The original used 0 = up, 1 = left, 2 = diagonal, and "no entry".
_NONE, _UP, _LEFT, _DIAG = 0, 1, 2, 3
# Bands at least this wide use numpy row operations; narrower ones a plain Python loop.
_NUMPY_BAND = 64


def _normalized_chars(raw, lower, keep_accents):
    """``preprocess_text(c, lower, remove_space=False)`` of every raw char (memoised per char)."""
    cache = {}
    out = []
    for c in raw:
        n = cache.get(c)
        if n is None:
            n = tok_lib.preprocess_text(c, lower=lower, remove_space=False, keep_accents=keep_accents)
            cache[c] = n
        out.append(n)
    return out


def _banded_lcs_python(raw_norm, tok, max_dist):
    """The original banded LCS values, row by row in plain Python (fast for narrow bands).

    Row ``i`` holds the cells ``j = i - max_dist + k`` for ``k in [0, 2*max_dist)`` plus an
    extra last slot that is always 0 (the out-of-band cell above the band's right end).
    Cells outside ``[0, M)`` are never written and stay 0, exactly like the original's
    zero-filled buffer. Only values are kept; back-pointers are re-derived on the back-trace
    path (:func:`_back_pointer`), which is much cheaper than storing one per cell.
    """
    m = len(tok)
    width = 2 * max_dist
    prev = [0] * (width + 1)
    rows = []
    for i, c in enumerate(raw_norm):
        off = i - max_dist
        k0 = -off if off < 0 else 0
        k1 = m - off if m - off < width else width
        cur = [0] * k0
        cur_append = cur.append
        left = 0
        # u = f[i-1, j] (0 when out of row i-1's band or i == 0), d = f[i-1, j-1].
        for u, d, t in zip(prev[k0 + 1:k1 + 1], prev[k0:k1], tok[off + k0:off + k1]):
            v = left if left > u else u
            if t == c and d >= v:     # diagonal strictly larger: d + 1 > v
                v = d + 1
            cur_append(v)
            left = v
        cur.extend([0] * (width + 1 - len(cur)))
        rows.append(cur)
        prev = cur
    return rows


def _banded_lcs_numpy(raw_norm, tok, max_dist):
    """Same values as :func:`_banded_lcs_python` with numpy row operations (wide bands).

    Within a row ``f[i, j] = max(up, diag_if_match, f[i, j-1])`` is a running maximum of
    ``max(up, diag_if_match)``.
    """
    m = len(tok)
    width = 2 * max_dist
    tok_arr = np.array([ord(ch) for ch in tok], dtype=np.int64)               # [M]
    prev = np.zeros(width + 1, dtype=np.int64)                                # [W + 1]
    rows = []
    for i, c in enumerate(raw_norm):
        off = i - max_dist
        k0 = max(0, -off)
        k1 = min(width, m - off)
        cur = np.zeros(width + 1, dtype=np.int64)                             # [W + 1]
        if k1 > k0:
            up = prev[k0 + 1:k1 + 1]                                          # [K]
            if len(c) == 1:
                match = tok_arr[off + k0:off + k1] == ord(c)                  # [K]
                diag = np.where(match, prev[k0:k1] + 1, 0)                    # [K]
                cur[k0:k1] = np.maximum.accumulate(np.maximum(up, diag))
            else:  # "" or several chars after NFKD: never equal to one tok char.
                cur[k0:k1] = np.maximum.accumulate(up)
        rows.append(cur)
        prev = cur
    return rows


def _banded_lcs(raw_norm, tok, max_dist):
    fn = _banded_lcs_numpy if 2 * max_dist >= _NUMPY_BAND else _banded_lcs_python
    return fn(raw_norm, tok, max_dist)


def _back_pointer(rows, raw_norm, tok, max_dist, i, j):
    """The original's back-pointer of cell (i, j), re-derived from the DP values.

    The original stored, per evaluated cell: "up" when i > 0; "left" if ``f[i, j-1]`` is
    strictly larger than that; "diagonal" if the characters match and ``f[i-1, j-1] + 1`` is
    strictly larger than both. Row 0 cells without left/diagonal had no entry (_NONE).
    Returns _NONE for cells outside the evaluated band as well.
    """
    width = 2 * max_dist
    k = j - (i - max_dist)
    if k < 0 or k >= width:
        return _NONE
    if i > 0:
        prev = rows[i - 1]
        up = prev[k + 1]
        diag = prev[k]
    else:
        up = diag = 0
    left = rows[i][k - 1] if k > 0 and j > 0 else 0
    if raw_norm[i] == tok[j] and diag + 1 > max(up, left):
        return _DIAG
    if left > up:
        return _LEFT
    return _UP if i > 0 else _NONE


def align_chars(raw_text, tok_cat_text, lower=False, keep_accents=False):
    """Character alignment between a raw paragraph and its concatenated pieces.

    Exactly the original's banded LCS: ``f[i, j]`` = LCS length of ``raw[:i+1]`` vs
    ``tok[:j+1]``, evaluated for ``j`` in ``[i - max_dist, i + max_dist)`` ∩ ``[0, M)`` with
    everything else 0; per cell take "up" ``f[i-1, j]``, then "left" ``f[i, j-1]`` if strictly
    larger, then "diagonal" ``f[i-1, j-1] + 1`` if the characters match and it is strictly
    larger. Characters match when ``preprocess_text(raw[i], lower, remove_space=False) ==
    tok[j]``. ``max_dist = |N - M| + 5``; if ``f[N-1, M-1] <= 0.8 N`` the band is doubled
    once. The back-trace from ``(N-1, M-1)`` records every diagonal step and stops at a cell
    without a back-pointer.

    Returns:
      ``(orig_to_chartok, chartok_to_orig, lcs_len)`` — lists with ``None`` for unaligned
      characters — or ``None`` when the texts do not align (nothing aligned or
      ``lcs_len < 0.8 N``; the original printed "MISMATCH DETECTED!" and dropped the example).
    """
    n, m = len(raw_text), len(tok_cat_text)
    if n == 0 or m == 0:
        return None
    raw_norm = _normalized_chars(raw_text, lower, keep_accents)
    max_dist = abs(n - m) + 5
    for attempt in range(2):
        if attempt:
            max_dist *= 2
        rows = _banded_lcs(raw_norm, tok_cat_text, max_dist)
        lcs_len = int(rows[n - 1][m - 1 - (n - 1 - max_dist)])
        if lcs_len > 0.8 * n:
            break

    orig_to_chartok = [None] * n
    chartok_to_orig = [None] * m
    i, j = n - 1, m - 1
    aligned = 0
    while i >= 0 and j >= 0:
        p = _back_pointer(rows, raw_norm, tok_cat_text, max_dist, i, j)
        if p == _DIAG:
            orig_to_chartok[i] = j
            chartok_to_orig[j] = i
            aligned += 1
            i, j = i - 1, j - 1
        elif p == _LEFT:
            j -= 1
        elif p == _UP:
            i -= 1
        else:
            break
    if aligned == 0 or lcs_len < 0.8 * n:
        return None
    return orig_to_chartok, chartok_to_orig, lcs_len


def convert_index(index, pos, M=None, is_start=True):
    """Maps position ``pos`` through a partial alignment ``index`` (entries may be None).

    If ``index[pos]`` is aligned it is returned. Otherwise the nearest aligned entries to the
    left (``front``) and right (``rear``) decide (the original's rules):

    * only ``rear``: start → 0 if ``index[rear] >= 1``; end → ``index[rear] - 1``;
      ``index[rear]`` itself when it is 0;
    * only ``front``: with ``M`` and ``index[front] < M - 1``: start → ``index[front] + 1``,
      end → ``M - 1``; otherwise ``index[front]``;
    * both, with a gap (``index[rear] > index[front] + 1``): start → ``index[front] + 1``,
      end → ``index[rear] - 1``; without a gap: start → ``index[rear]``, end → ``index[front]``.
    """
    if index[pos] is not None:
        return index[pos]
    n = len(index)
    rear = pos
    while rear < n - 1 and index[rear] is None:
        rear += 1
    front = pos
    while front > 0 and index[front] is None:
        front -= 1
    f_val, r_val = index[front], index[rear]
    if f_val is None and r_val is None:
        raise ValueError("convert_index: the alignment is empty")
    if f_val is None:
        if r_val >= 1:
            return 0 if is_start else r_val - 1
        return r_val
    if r_val is None:
        if M is not None and f_val < M - 1:
            return f_val + 1 if is_start else M - 1
        return f_val
    if r_val > f_val + 1:
        return f_val + 1 if is_start else r_val - 1
    return r_val if is_start else f_val


# ==========================================================================================
# Features
# ==========================================================================================
class InputFeatures:
    """One window of one example (the original's ``InputFeatures``).

    Memory matters for SQuAD train (~130k features), so only the unpadded token ids and
    lengths are stored; the padded model inputs are built on access:

      input_ids    int32   [max_seq_length]  P <sep> Q <sep> <cls> then pad id 0
      input_mask   float32 [max_seq_length]  0 = real token, 1 = padding
      segment_ids  int32   [max_seq_length]  P (and first <sep>) 0, Q (and second <sep>) 1,
                                             <cls> 2, padding 3
      p_mask       float32 [max_seq_length]  1 = cannot be an answer boundary (sep, Q, pad);
                                             0 for paragraph tokens and <cls>

    Other attributes: ``unique_id``, ``example_index``, ``doc_span_index``,
    ``paragraph_len`` (P tokens in this window), ``cls_index``,
    ``tok_start_to_orig_index`` / ``tok_end_to_orig_index`` (int32 ``[paragraph_len]``:
    first/last raw character of each window token), ``token_is_max_context`` (bool
    ``[paragraph_len]``; the original used a dict {position: bool}), and for training
    ``start_position``, ``end_position`` (window positions; ``cls_index`` when there is no
    answer in the window) and ``is_impossible``.
    """
    __slots__ = ("unique_id", "example_index", "doc_span_index", "tok_start_to_orig_index",
                 "tok_end_to_orig_index", "token_is_max_context", "tokens", "query_len",
                 "max_seq_length", "paragraph_len", "start_position", "end_position",
                 "is_impossible")

    def __init__(self, unique_id, example_index, doc_span_index, tok_start_to_orig_index,
                 tok_end_to_orig_index, token_is_max_context, tokens, query_len, max_seq_length,
                 paragraph_len, start_position=None, end_position=None, is_impossible=None):
        self.unique_id = unique_id
        self.example_index = example_index
        self.doc_span_index = doc_span_index
        self.tok_start_to_orig_index = tok_start_to_orig_index
        self.tok_end_to_orig_index = tok_end_to_orig_index
        self.token_is_max_context = token_is_max_context
        self.tokens = tokens  # int32 [paragraph_len + query_len + 3], unpadded
        self.query_len = query_len
        self.max_seq_length = max_seq_length
        self.paragraph_len = paragraph_len
        self.start_position = start_position
        self.end_position = end_position
        self.is_impossible = is_impossible

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def cls_index(self):
        return self.paragraph_len + self.query_len + 2

    @property
    def input_ids(self):
        out = np.full(self.max_seq_length, PAD_TOKEN_ID, dtype=np.int32)  # [L]
        out[:len(self.tokens)] = self.tokens
        return out

    @property
    def input_mask(self):
        out = np.ones(self.max_seq_length, dtype=np.float32)  # [L]
        out[:len(self.tokens)] = 0.0
        return out

    @property
    def segment_ids(self):
        out = np.full(self.max_seq_length, SEG_ID_PAD, dtype=np.int32)  # [L]
        p, q = self.paragraph_len, self.query_len
        out[:p + 1] = SEG_ID_P
        out[p + 1:p + q + 2] = SEG_ID_Q
        out[p + q + 2] = SEG_ID_CLS
        return out

    @property
    def p_mask(self):
        out = np.ones(self.max_seq_length, dtype=np.float32)  # [L]
        out[:self.paragraph_len] = 0.0
        out[self.cls_index] = 0.0
        return out

    def __repr__(self):
        return (f"InputFeatures(unique_id={self.unique_id}, example_index={self.example_index}, "
                f"doc_span_index={self.doc_span_index}, paragraph_len={self.paragraph_len}, "
                f"cls_index={self.cls_index}, start_position={self.start_position}, "
                f"end_position={self.end_position}, is_impossible={self.is_impossible})")


class FeatureList(list):
    """A list of :class:`InputFeatures` plus what conversion dropped.

    Attributes:
      num_examples: examples given.
      dropped_qas_ids: examples that produced no feature (alignment mismatch, empty
        paragraph, answer that could not be mapped).
    """
    num_examples = 0
    dropped_qas_ids = ()


def _check_is_max_context(doc_spans, cur_span_index, position):
    """True when span ``cur_span_index`` gives token ``position`` the most context.

    Score = ``min(left context, right context) + 0.01 * span length``; the first span with
    the highest score owns the token. (Reference form; :func:`_max_context_owner` computes
    the owner of every token at once.)
    """
    best_score, best_index = None, None
    for span_index, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, span_index
    return cur_span_index == best_index


def _max_context_owner(doc_spans, num_tokens):
    """For every token, the index of the span that gives it the most context.

    Same scores and first-wins tie rule as :func:`_check_is_max_context`
    (``np.argmax`` returns the first maximum).
    """
    scores = np.full((len(doc_spans), num_tokens), -np.inf)                  # [S, N]
    pos = np.arange(num_tokens)                                               # [N]
    for s, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        p = pos[start:end + 1]
        scores[s, start:end + 1] = np.minimum(p - start, end - p) + 0.01 * length
    return np.argmax(scores, axis=0)                                          # [N]


def _doc_spans(num_tokens, max_tokens_for_doc, doc_stride):
    """Sliding windows ``(start, length)`` covering ``num_tokens`` tokens."""
    spans, start = [], 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return spans


class _ParagraphInfo:
    """Everything about one paragraph that does not depend on the question."""
    __slots__ = ("para_ids", "tok_start_to_orig", "tok_end_to_orig", "orig_to_chartok",
                 "chartok_to_tok")


def _prepare_paragraph(sp_model, paragraph_text, lower, keep_accents):
    """Steps 2–5: pieces, char bookkeeping, alignment and piece → raw-char maps (or None)."""
    text = tok_lib.preprocess_text(paragraph_text, lower=lower, keep_accents=keep_accents)
    pieces = tok_lib.encode_pieces(sp_model, text)
    if not pieces:
        return None
    chartok_to_tok = []
    tok_start_to_chartok, tok_end_to_chartok = [], []
    char_cnt = 0
    for i, piece in enumerate(pieces):
        chartok_to_tok.extend([i] * len(piece))
        tok_start_to_chartok.append(char_cnt)
        char_cnt += len(piece)
        tok_end_to_chartok.append(char_cnt - 1)
    tok_cat_text = "".join(pieces).replace(tok_lib.SPIECE_UNDERLINE, " ")
    alignment = align_chars(paragraph_text, tok_cat_text, lower=lower, keep_accents=keep_accents)
    if alignment is None:
        return None
    orig_to_chartok, chartok_to_orig, _ = alignment
    n = len(paragraph_text)
    info = _ParagraphInfo()
    info.para_ids = [sp_model.PieceToId(p) for p in pieces]
    info.tok_start_to_orig = [convert_index(chartok_to_orig, s, n, is_start=True)
                              for s in tok_start_to_chartok]
    info.tok_end_to_orig = [convert_index(chartok_to_orig, e, n, is_start=False)
                            for e in tok_end_to_chartok]
    info.orig_to_chartok = orig_to_chartok
    info.chartok_to_tok = chartok_to_tok
    return info


def _example_features(sp_model, example, info, settings):
    """Steps 1 and 6–9 for one example; returns (list of feature kwargs, warning or None)."""
    max_seq_length, doc_stride, max_query_length, is_training, lower, keep_accents = settings
    query_ids = tok_lib.encode_ids(
        sp_model, tok_lib.preprocess_text(example.question_text, lower=lower, keep_accents=keep_accents))
    query_ids = query_ids[:max_query_length]
    q_len = len(query_ids)

    tok_start_position = tok_end_position = -1
    if is_training and not example.is_impossible:
        start_char = example.start_position
        end_char = start_char + len(example.orig_answer_text) - 1
        start_chartok = convert_index(info.orig_to_chartok, start_char, is_start=True)
        end_chartok = convert_index(info.orig_to_chartok, end_char, is_start=False)
        tok_start_position = info.chartok_to_tok[start_chartok]
        tok_end_position = info.chartok_to_tok[end_chartok]
        if tok_start_position > tok_end_position:
            return [], (f"question {example.qas_id}: answer {example.orig_answer_text!r} maps to "
                        f"pieces {tok_start_position}..{tok_end_position} (start after end); skipped")

    all_doc_tokens = info.para_ids
    max_tokens_for_doc = max_seq_length - q_len - 3
    doc_spans = _doc_spans(len(all_doc_tokens), max_tokens_for_doc, doc_stride)
    owner = _max_context_owner(doc_spans, len(all_doc_tokens))                 # [N]
    tail = [tok_lib.SEP_ID] + query_ids + [tok_lib.SEP_ID, tok_lib.CLS_ID]
    out = []
    for span_index, (doc_start, length) in enumerate(doc_spans):
        window = slice(doc_start, doc_start + length)
        tokens = np.asarray(all_doc_tokens[window] + tail, dtype=np.int32)       # [P + Q + 3]
        is_max = owner[window] == span_index                                      # [P]
        cls_index = length + q_len + 2
        start_position = end_position = span_is_impossible = None
        if is_training:
            span_is_impossible = bool(example.is_impossible)
            if not span_is_impossible:
                doc_end = doc_start + length - 1
                if tok_start_position >= doc_start and tok_end_position <= doc_end:
                    # P comes first in the layout, so the offset inside the window is 0.
                    start_position = tok_start_position - doc_start
                    end_position = tok_end_position - doc_start
                else:
                    span_is_impossible = True
            if span_is_impossible:
                start_position = end_position = cls_index
        out.append(dict(
            doc_span_index=span_index,
            tok_start_to_orig_index=np.asarray(info.tok_start_to_orig[window], dtype=np.int32),
            tok_end_to_orig_index=np.asarray(info.tok_end_to_orig[window], dtype=np.int32),
            token_is_max_context=is_max, tokens=tokens, query_len=q_len,
            max_seq_length=max_seq_length, paragraph_len=length, start_position=start_position,
            end_position=end_position,
            is_impossible=None if span_is_impossible is None else float(span_is_impossible)))
    return out, None


# -- worker side -----------------------------------------------------------------------------
_WORKER = {}


def _init_worker(model_proto, settings):
    import sentencepiece as spm
    sp_model = spm.SentencePieceProcessor()
    sp_model.LoadFromSerializedProto(model_proto)
    _WORKER["sp"] = sp_model
    _WORKER["settings"] = settings


def _convert_group(group):
    """Converts all examples of one paragraph: ``[(example_index, example), ...]``.

    Returns ``(results, warnings)`` with ``results = [(example_index, [feature kwargs])]``.
    Warnings travel back to the parent so they are logged in one place.
    """
    sp_model, settings = _WORKER["sp"], _WORKER["settings"]
    lower, keep_accents = settings[4], settings[5]
    results, warnings = [], []
    paragraph_text = group[0][1].paragraph_text
    info = _prepare_paragraph(sp_model, paragraph_text, lower, keep_accents)
    if info is None:
        ids = ", ".join(ex.qas_id for _, ex in group[:5])
        warnings.append(f"MISMATCH DETECTED! the paragraph of question(s) {ids}"
                        f"{' ...' if len(group) > 5 else ''} is empty or does not align with its "
                        f"SentencePiece pieces (< 80% of characters matched); {len(group)} "
                        f"question(s) dropped.")
        return [(idx, []) for idx, _ in group], warnings
    for idx, example in group:
        feats, warning = _example_features(sp_model, example, info, settings)
        if warning:
            warnings.append(warning)
        results.append((idx, feats))
    return results, warnings


def _group_by_paragraph(examples):
    """Groups example indices by paragraph text (first-appearance order)."""
    groups = collections.OrderedDict()
    for idx, ex in enumerate(examples):
        groups.setdefault(ex.paragraph_text, []).append((idx, ex))
    return list(groups.values())


def _tokenizer_parts(tokenizer):
    sp_model = getattr(tokenizer, "sp_model", None) or getattr(tokenizer, "sp", None)
    if sp_model is None:
        raise TypeError(f"tokenizer must be an xlnet_tf.tokenization.tokenizer.Tokenizer, got {type(tokenizer).__name__}")
    if hasattr(tokenizer, "serialized_model_proto"):
        proto = tokenizer.serialized_model_proto()
    else:
        proto = sp_model.serialized_model_proto()
    return sp_model, proto, bool(getattr(tokenizer, "lower", False)), bool(getattr(tokenizer, "keep_accents", False))


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
                                 is_training, num_workers=None, log_every_sec=10.0):
    """Turns examples into model features (spec 6.2 steps 1–10).

    Args:
      examples: list of :class:`SquadExample` (from :func:`read_squad_examples`).
      tokenizer: an ``xlnet_tf.tokenization.tokenizer.Tokenizer``; its ``lower`` is the original
        ``--uncased`` flag.
      max_seq_length, doc_stride, max_query_length: the original flags (512, 128, 64).
      is_training: also build start/end labels and ``is_impossible``.
      num_workers: processes for the conversion (default ``os.cpu_count()``); small inputs
        are converted in this process.
      log_every_sec: progress log interval.
    Returns:
      a :class:`FeatureList` in example order, ``unique_id`` from 1000000000.
    """
    if max_seq_length < 8:
        raise ValueError(f"max_seq_length={max_seq_length} is too small for SQuAD windows.")
    if max_query_length < 1 or doc_stride < 1:
        raise ValueError(f"max_query_length ({max_query_length}) and doc_stride ({doc_stride}) must be >= 1.")
    if max_seq_length - max_query_length - 3 < 1:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for the paragraph after a "
            f"max_query_length={max_query_length} question and 3 special tokens; use "
            f"max_seq_length > max_query_length + 3 (the original used 512 and 64).")
    sp_model, proto, lower, keep_accents = _tokenizer_parts(tokenizer)
    settings = (int(max_seq_length), int(doc_stride), int(max_query_length), bool(is_training),
                lower, keep_accents)
    groups = _group_by_paragraph(examples)
    num_workers = (os.cpu_count() or 1) if num_workers is None else max(1, int(num_workers))

    per_example = [None] * len(examples)
    done = 0
    t0 = last_log = time.time()

    def consume(results, warnings):
        nonlocal done, last_log
        for w in warnings:
            logger.warning("%s", w)
        for idx, feats in results:
            per_example[idx] = feats
        done += len(results)
        now = time.time()
        if now - last_log >= log_every_sec:
            last_log = now
            logger.info("SQuAD features: %d/%d examples (%.0f examples/s)", done, len(examples),
                        done / max(now - t0, 1e-9))

    if num_workers > 1 and len(groups) >= 4 * num_workers and len(examples) >= 200:
        # fork keeps the parent's imported modules (the xlnet_tf package imports TensorFlow,
        # which a spawned worker would import again); workers only run SentencePiece + Python.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        chunksize = max(1, min(32, len(groups) // (num_workers * 8)))
        with ctx.Pool(num_workers, initializer=_init_worker, initargs=(proto, settings)) as pool:
            for results, warnings in pool.imap_unordered(_convert_group, groups, chunksize=chunksize):
                consume(results, warnings)
    else:
        _init_worker(proto, settings)
        for group in groups:
            consume(*_convert_group(group))

    features = FeatureList()
    dropped = []
    unique_id = FIRST_UNIQUE_ID
    for idx, feats in enumerate(per_example):
        if not feats:
            dropped.append(examples[idx].qas_id)
            continue
        for kw in feats:
            features.append(InputFeatures(unique_id=unique_id, example_index=idx, **kw))
            unique_id += 1
    features.num_examples = len(examples)
    features.dropped_qas_ids = tuple(dropped)
    elapsed = max(time.time() - t0, 1e-9)
    logger.info("SQuAD features: %d examples -> %d features in %.1fs (%.0f examples/s, %d workers); "
                "%d example(s) dropped.", len(examples), len(features), elapsed,
                len(examples) / elapsed, num_workers, len(dropped))
    return features


# ==========================================================================================
# TFRecords, cache and tf.data
# ==========================================================================================
def feature_spec(seq_len, is_training):
    """The ``tf.io.parse_single_example`` spec of the SQuAD records (static shapes)."""
    import tensorflow as tf
    spec = {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_len], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_len], tf.float32),
        "p_mask": tf.io.FixedLenFeature([seq_len], tf.float32),
        "segment_ids": tf.io.FixedLenFeature([seq_len], tf.int64),
        "cls_index": tf.io.FixedLenFeature([], tf.int64),
    }
    if is_training:
        spec["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
        spec["end_positions"] = tf.io.FixedLenFeature([], tf.int64)
        spec["is_impossible"] = tf.io.FixedLenFeature([], tf.float32)
    return spec


def _tmp_path(path):
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    return tmp


def _write_records_tmp(features, path, is_training):
    """Writes the records to a temporary file next to ``path``; returns (tmp name, count)."""
    import tensorflow as tf

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    tmp = _tmp_path(path)
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for f in features:
                feats = {
                    "unique_ids": ints([f.unique_id]),
                    "input_ids": ints(f.input_ids.tolist()),
                    "input_mask": floats(f.input_mask.tolist()),
                    "p_mask": floats(f.p_mask.tolist()),
                    "segment_ids": ints(f.segment_ids.tolist()),
                    "cls_index": ints([f.cls_index]),
                }
                if is_training:
                    if f.start_position is None:
                        raise ValueError(f"feature {f.unique_id} has no training labels; build the "
                                         f"features with is_training=True.")
                    feats["start_positions"] = ints([f.start_position])
                    feats["end_positions"] = ints([f.end_position])
                    feats["is_impossible"] = floats([f.is_impossible])
                example = tf.train.Example(features=tf.train.Features(feature=feats))
                writer.write(example.SerializeToString())
                count += 1
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp, count


def write_squad_features(features, path, is_training):
    """Writes features as a TFRecord file, atomically (temporary name, then rename).

    Record features: ``unique_ids``, ``input_ids``, ``input_mask`` (float), ``p_mask``
    (float), ``segment_ids``, ``cls_index`` and, for training, ``start_positions``,
    ``end_positions``, ``is_impossible`` (float). Returns the number of records.
    """
    path = os.fspath(path)
    tmp, count = _write_records_tmp(features, path, is_training)
    os.replace(tmp, path)
    return count


def _sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _atomic_bytes(data, path):
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class SquadFeatureCache:
    """What :func:`load_or_build_features` returns.

    Attributes:
      record_path: the TFRecord file.
      manifest_path, manifest: the settings manifest (dict).
      num_features: records in the file.
      examples, features: for prediction (``is_training=False``) the examples and the
        Python feature objects post-processing needs; None for training.
      rebuilt: True when the cache was (re)built by this call.
    """

    def __init__(self, record_path, manifest_path, manifest, examples, features, rebuilt):
        self.record_path = record_path
        self.manifest_path = manifest_path
        self.manifest = manifest
        self.num_features = manifest["num_features"]
        self.examples = examples
        self.features = features
        self.rebuilt = rebuilt


def _cache_paths(data_file, spiece_model_file, cache_dir, is_training, max_seq_length,
                 max_query_length, doc_stride, uncased):
    data_stem = os.path.splitext(os.path.basename(data_file))[0]
    spm_stem = os.path.splitext(os.path.basename(spiece_model_file))[0]
    split = "train" if is_training else "eval"
    name = (f"{data_stem}.{spm_stem}.slen-{max_seq_length}.qlen-{max_query_length}."
            f"stride-{doc_stride}{'.uncased' if uncased else ''}.{split}.tf_record")
    record = os.path.join(cache_dir, name)
    return record, record + ".manifest.json", record + ".features.pkl"


def load_or_build_features(data_file, spiece_model_file, cache_dir, is_training, max_seq_length=512,
                           doc_stride=128, max_query_length=64, uncased=False, num_workers=None,
                           overwrite=False, shuffle_seed=0):
    """Returns cached SQuAD records (and prediction metadata), building them when needed.

    The cache in ``cache_dir`` is ``<data>.<spm>.slen-L.qlen-Q.stride-S[.uncased].{train,eval}.tf_record``
    with ``.manifest.json`` (settings + counts) and, for prediction, ``.features.pkl``
    (examples and feature objects) beside it. It is reused only when the manifest's settings
    equal the requested ones — SentencePiece model sha256, lengths, ``uncased``, the source
    file's size and sha256 — and all files exist; otherwise (or with ``overwrite``) it is
    rebuilt. Training examples are shuffled with ``shuffle_seed`` before conversion (as the
    original pre-shuffled, so a 2048-record shuffle buffer mixes articles).
    """
    data_file, spiece_model_file = os.fspath(data_file), os.fspath(spiece_model_file)
    if not os.path.isfile(spiece_model_file):
        raise FileNotFoundError(f"SentencePiece model {spiece_model_file!r} does not exist "
                                f"(--spiece_model_file); pass the spiece.model of the checkpoint.")
    if not os.path.isfile(data_file):
        raise FileNotFoundError(f"SQuAD file {data_file!r} does not exist (check --train_file/--predict_file).")
    os.makedirs(cache_dir, exist_ok=True)
    record, manifest_path, meta_path = _cache_paths(
        data_file, spiece_model_file, cache_dir, is_training, max_seq_length, max_query_length,
        doc_stride, uncased)
    settings = {
        "format_version": CACHE_FORMAT_VERSION,
        "spiece_model_sha256": _sha256_file(spiece_model_file),
        "max_seq_length": int(max_seq_length),
        "doc_stride": int(doc_stride),
        "max_query_length": int(max_query_length),
        "uncased": bool(uncased),
        "is_training": bool(is_training),
        "source_size": os.path.getsize(data_file),
        "source_sha256": _sha256_file(data_file),
        "shuffle_seed": int(shuffle_seed) if is_training else None,
    }

    if not overwrite and os.path.isfile(manifest_path):
        try:
            with open(manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, json.JSONDecodeError):
            manifest = None
        ok = (manifest is not None and manifest.get("settings") == settings
              and os.path.isfile(record) and os.path.getsize(record) == manifest.get("record_bytes")
              and (is_training or os.path.isfile(meta_path)))
        if ok:
            examples = features = None
            if not is_training:
                with open(meta_path, "rb") as f:
                    examples, features = pickle.load(f)
            logger.info("Reusing cached SQuAD features %s (%d features).", record, manifest["num_features"])
            return SquadFeatureCache(record, manifest_path, manifest, examples, features, rebuilt=False)
        if manifest is not None:
            logger.info("Cached SQuAD features %s do not match the requested settings; rebuilding.", record)

    tokenizer = tok_lib.Tokenizer(spiece_model_file, lower=uncased)
    examples = read_squad_examples(data_file, is_training=is_training)
    if is_training:
        random.Random(shuffle_seed).shuffle(examples)
    features = convert_examples_to_features(
        examples, tokenizer, max_seq_length=max_seq_length, doc_stride=doc_stride,
        max_query_length=max_query_length, is_training=is_training, num_workers=num_workers)
    if not features:
        raise ValueError(f"SQuAD file {data_file!r} produced no features ({len(examples)} examples).")

    # Invalidate first: a crash between the renames below leaves no manifest, so no reuse.
    if os.path.exists(manifest_path):
        os.unlink(manifest_path)
    tmp_record, count = _write_records_tmp(features, record, is_training)
    tmp_meta = None
    try:
        if not is_training:
            tmp_meta = _tmp_path(meta_path)
            with open(tmp_meta, "wb") as f:
                pickle.dump((examples, features), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp_record, record)
        if tmp_meta:
            os.replace(tmp_meta, meta_path)
    except BaseException:
        for t in (tmp_record, tmp_meta):
            if t and os.path.exists(t):
                os.unlink(t)
        raise
    manifest = {
        "settings": settings,
        "spiece_model_file": os.path.abspath(spiece_model_file),
        "source_file": os.path.abspath(data_file),
        "source_mtime": os.path.getmtime(data_file),
        "num_examples": len(examples),
        "num_features": count,
        "num_bad_offsets": examples.num_bad_offsets,
        "num_skipped_questions": len(examples.skipped_qas_ids),
        "num_dropped_examples": len(features.dropped_qas_ids),
        "record_bytes": os.path.getsize(record),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    _atomic_bytes(json.dumps(manifest, indent=2).encode("utf-8"), manifest_path)
    logger.info("Wrote %d SQuAD features to %s.", count, record)
    if is_training:
        examples = features = None
    return SquadFeatureCache(record, manifest_path, manifest, examples, features, rebuilt=True)


def squad_dataset(path, batch_size, is_training, seq_len, shuffle_buffer=2048, seed=None,
                  repeat=None):
    """tf.data pipeline over SQuAD records with static shapes.

    Training: repeat (by default), shuffle with ``shuffle_buffer``, batch with
    ``drop_remainder=True`` (static batch dimension). Prediction: file order, no repeat, the
    last partial batch kept (every question needs its features).

    Yields dicts: ``unique_ids`` int64 ``[B]``, ``input_ids`` int32 ``[B, T]``,
    ``input_mask`` float32 ``[B, T]`` (1 = pad), ``p_mask`` float32 ``[B, T]``,
    ``segment_ids`` int32 ``[B, T]``, ``cls_index`` int32 ``[B]`` and for training
    ``start_positions``/``end_positions`` int32 ``[B]``, ``is_impossible`` float32 ``[B]``.
    """
    import tensorflow as tf
    paths = [os.fspath(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"SQuAD record file {p!r} does not exist; build it with "
                                    f"load_or_build_features (or --do_prepro).")
    spec = feature_spec(seq_len, is_training)

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        out = {}
        for name, value in ex.items():
            if value.dtype == tf.int64 and name != "unique_ids":
                value = tf.cast(value, tf.int32)
            out[name] = value
        return out

    d = tf.data.TFRecordDataset(paths)
    if is_training:
        if repeat is None or repeat:
            d = d.repeat()
        d = d.shuffle(shuffle_buffer, seed=seed)
    d = d.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    d = d.batch(batch_size, drop_remainder=bool(is_training))
    return d.prefetch(tf.data.AUTOTUNE)
