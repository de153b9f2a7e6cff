"""The original's character alignment between a RAW paragraph and its SentencePiece pieces
(``run_squad.py``'s ``_lcs_match`` / ``_convert_index``), which lets post-processing cut
answers out of the raw text.

Per paragraph (:func:`prepare_paragraph`):

1. ``pieces = encode_pieces(preprocess_text(paragraph, lower=uncased))``.
2. Piece bookkeeping over ``tok_cat_text = "".join(pieces).replace("▁", " ")``: each piece's
   first/last character offset and a char -> piece map.
3. A character alignment between the RAW paragraph and ``tok_cat_text`` (banded LCS, see
   :func:`align_chars`), giving ``orig_to_chartok`` / ``chartok_to_orig``.
4. ``tok_start_to_orig_index`` / ``tok_end_to_orig_index`` per piece with
   :func:`convert_index`.

Speed. The original aligned characters with a pure-Python banded LCS that called
``preprocess_text`` (an NFKD normalisation) in every DP cell and re-ran the whole alignment
for every *question* of a paragraph; preprocessing SQuAD 2.0 train took hours. Here the
alignment gives exactly the same result (same band, same tie-breaking, same zero cells
outside the band, same retry rule -- tested against a cell-by-cell re-implementation of the
original) but is computed

* once per distinct paragraph (SQuAD has ~5 questions per paragraph; see
  :mod:`xlnet_tf.squad.features`),
* with each raw character normalised once instead of once per cell,
* with flat per-row value lists (narrow bands) or numpy row operations (wide bands, where
  a row is a running maximum) instead of a float matrix and a dict of back-pointers; the
  back-pointers are re-derived from the values only along the back-trace path.
"""
import numpy as np

from xlnet_tf.tokenization import tokenizer as tok_lib

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



class ParagraphInfo:
    """Everything about one paragraph that does not depend on the question."""
    __slots__ = ("para_ids", "tok_start_to_orig", "tok_end_to_orig", "orig_to_chartok",
                 "chartok_to_tok")


def prepare_paragraph(sp_model, paragraph_text, lower, keep_accents):
    """Steps 1-4 of the module docstring for one paragraph: a :class:`ParagraphInfo`, or
    None when the paragraph is empty or does not align with its pieces."""
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
    info = ParagraphInfo()
    info.para_ids = [sp_model.PieceToId(p) for p in pieces]
    info.tok_start_to_orig = [convert_index(chartok_to_orig, s, n, is_start=True)
                              for s in tok_start_to_chartok]
    info.tok_end_to_orig = [convert_index(chartok_to_orig, e, n, is_start=False)
                            for e in tok_end_to_chartok]
    info.orig_to_chartok = orig_to_chartok
    info.chartok_to_tok = chartok_to_tok
    return info

