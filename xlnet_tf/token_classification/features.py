"""Token-classification features: windows of a sentence's pieces in XLNet's layout.

A window of at most ``T - 2`` pieces is packed as the classifier packs a single text
(``xlnet_tf.classification.features.pack_ids``)::

    [0 .. 0  p1 .. pn <sep> <cls>]    input_ids  (LEFT padding with 0)
    [1 .. 1  0  ..  0   0     0  ]    input_mask (1 = padding)
    [4 .. 4  0  ..  0   0     2  ]    seg_ids
    [-1..-1  l1 .. ln  -1    -1  ]    label_ids  (-1 = not in the loss)

so a released checkpoint fine-tunes on the layout it was pretrained with.  ``label_ids``
holds the word's tag id on its label piece (``xlnet_tf.token_classification.alignment``)
and -1 elsewhere; with ``label_all_pieces`` every piece of the word carries the word's id.

A sentence longer than ``T - 2`` pieces is read in windows that start every ``doc_stride``
pieces (the last one ends at the sentence's end).  A word is scored and predicted in ONE
window: the one where its label piece has the most context on its shorter side (as SQuAD
picks an answer token's window), so every word counts once in the loss and once in the
predictions.

Document context (``context_len`` N > 0): each window also carries ``context_ids`` /
``context_mask`` (length N): the last N pieces of its document before the window's first
piece (the previous sentences' pieces one after the other, then, for a later window of a
long sentence, the sentence's own pieces before it), left-padded with 0 (mask 1 = padding),
without ``<sep>`` or ``<cls>``.  The first window of a document's first sentence has an
all-padding context.
"""
import dataclasses
from typing import Dict, List, Optional, Sequence

from xlnet_tf.classification.features import PAD_INPUT_ID, pack_ids

IGNORE = -1


@dataclasses.dataclass
class WindowFeatures:
    """One window: the packed arrays (length T) and ``positions`` {word index: position in
    the packed window of its label piece} of the words it predicts."""
    sentence: int
    input_ids: List[int]
    input_mask: List[float]
    seg_ids: List[int]
    label_ids: List[int]
    positions: Dict[int, int]
    context_ids: Optional[List[int]] = None
    context_mask: Optional[List[float]] = None


def pack_context(before, context_len):
    """(context_ids, context_mask) of length ``context_len``: the last pieces of ``before``
    (the document's piece ids before a window), left-padded."""
    kept = list(before[max(0, len(before) - context_len):]) if context_len else []
    n_pad = context_len - len(kept)
    return [PAD_INPUT_ID] * n_pad + kept, [1.0] * n_pad + [0.0] * len(kept)


def window_starts(n_pieces, budget, doc_stride):
    """Start indexes of the windows over ``n_pieces`` pieces (each at most ``budget``)."""
    starts = [0]
    while starts[-1] + budget < n_pieces:
        starts.append(min(starts[-1] + doc_stride, n_pieces - budget))
    return starts


def sentence_windows(index, aligned, tag_ids, max_seq_length, doc_stride,
                     label_all_pieces=False, context_len=0,
                     before: Sequence[int] = ()) -> List[WindowFeatures]:
    """The windows of sentence ``index`` (``aligned``: its AlignedSentence; ``tag_ids``: one
    id per word, or None without labels); with ``context_len`` > 0 each carries its context
    from ``before`` (the piece ids of the sentence's document before it) and the
    sentence's pieces before the window."""
    budget = max_seq_length - 2
    n = len(aligned.ids)
    starts = window_starts(n, budget, doc_stride)
    # the window of each word: most context around its label piece
    owner = []
    for piece in aligned.label_pieces:
        best, best_score = 0, None
        for w, s in enumerate(starts):
            end = min(s + budget, n) - 1
            if s <= piece <= end:
                score = min(piece - s, end - piece) + 0.01 * (end - s + 1)
                if best_score is None or score > best_score:
                    best, best_score = w, score
        owner.append(best)
    word_ends = aligned.word_starts[1:] + [n]
    out = []
    for w, s in enumerate(starts):
        ids = aligned.ids[s:s + budget]
        input_ids, input_mask, seg_ids = pack_ids(ids, None, max_seq_length)
        n_pad = max_seq_length - len(ids) - 2
        labels = [IGNORE] * max_seq_length
        positions = {}
        for word, piece in enumerate(aligned.label_pieces):
            if owner[word] != w:
                continue
            positions[word] = n_pad + piece - s
            if tag_ids is None:
                continue
            if label_all_pieces:
                for p in range(max(aligned.word_starts[word], s),
                               min(word_ends[word], s + len(ids))):
                    labels[n_pad + p - s] = tag_ids[word]
            labels[n_pad + piece - s] = tag_ids[word]
        context = (None, None)
        if context_len:
            recent = list(before[max(0, len(before) - context_len):])
            context = pack_context(recent + aligned.ids[:s], context_len)
        out.append(WindowFeatures(index, input_ids, input_mask, seg_ids, labels, positions,
                                  *context))
    return out
