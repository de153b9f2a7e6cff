"""Words to SentencePiece pieces, done once for training, evaluation and serving.

Each word is tokenized on its own (the XLNet text rules, then SentencePiece with the
original's digit-comma rule), so a sentence's pieces are what SentencePiece gives the
words joined by spaces, and every piece belongs to exactly one word::

    words   EU        rejects             (      1,000,
    pieces  ▁E U      ▁re j ect s         ▁ (    ▁ 1 , 0 00 ,
    label   ^         ^                     ^      ^

A word's label goes to its LABEL PIECE: its first piece, or when that is a lone ``▁`` (as
SentencePiece writes ``(`` -> ``▁ (``) the next one, which holds the word's first
characters; a word of lone ``▁`` pieces only is labelled on its first.  A word SentencePiece
turns into no piece at all (e.g. a zero-width space, removed by the text rules) gets one
``<unk>`` piece so that it still has a position and a prediction.  Both cases are counted.
The in-graph version of the same rules is in ``xlnet_tf.token_classification.export``.
"""
import dataclasses
from typing import List

from xlnet_tf.tokenization.tokenizer import SPIECE_UNDERLINE, UNK_ID


@dataclasses.dataclass
class AlignedSentence:
    """``ids``: the pieces of all words; ``word_starts[w]``: index in ``ids`` of word w's
    first piece; ``label_pieces[w]``: index of its label piece; counts of the words that
    had no piece (given ``<unk>``) or started with a lone ``▁``."""
    ids: List[int]
    word_starts: List[int]
    label_pieces: List[int]
    num_empty: int = 0
    num_lone_underline: int = 0


def underline_id(tokenizer):
    """The id of the lone ``▁`` piece, or -1 when the vocabulary has none."""
    i = tokenizer.piece_to_id(SPIECE_UNDERLINE)
    return -1 if i == UNK_ID and tokenizer.id_to_piece(UNK_ID) != SPIECE_UNDERLINE else int(i)


def label_offset(word_ids, lone_id):
    """Index of the label piece in one word's ids (0 when every piece is a lone ``▁``)."""
    return next((k for k, i in enumerate(word_ids) if i != lone_id), 0)


def align_words(tokenizer, words, lone_id=None) -> AlignedSentence:
    """The pieces of ``words`` (a list of strings) and where each word's pieces are."""
    lone_id = underline_id(tokenizer) if lone_id is None else lone_id
    ids, starts, labels = [], [], []
    empty = lone = 0
    for word in words:
        word_ids = [int(i) for i in tokenizer.encode_ids(word)]
        if not word_ids:
            word_ids = [UNK_ID]
            empty += 1
        elif word_ids[0] == lone_id:
            lone += 1
        starts.append(len(ids))
        labels.append(len(ids) + label_offset(word_ids, lone_id))
        ids.extend(word_ids)
    return AlignedSentence(ids, starts, labels, empty, lone)
