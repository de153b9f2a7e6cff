"""Python tokenization for XLNet: SentencePiece pieces and ids, XLNet's special ids.

This module reproduces the original XLNet text pipeline (``prepro_utils.py`` and the
constants of ``data_utils.py``):

    ids = encode_ids(sp_model, preprocess_text(text, lower=uncased))

* :func:`preprocess_text` (declared in :mod:`xlnet_tf.tokenization.text` with the rules
  the in-graph path shares) — strip and collapse whitespace, turn the LaTeX-style quotes
  ``\\`\\``` and ``''`` into ``"``, NFKD-normalise and drop combining characters (accents)
  unless ``keep_accents``, and lower-case last when ``lower``.
* :func:`encode_pieces` — SentencePiece pieces plus the digit–comma rule: a piece such as
  ``▁2000,`` is split into the pieces of ``2000`` and a separate ``,`` piece.
* :func:`encode_ids` — the ids of those pieces.
* :class:`Tokenizer` — loads a SentencePiece model, checks that XLNet's special symbols sit
  at their fixed ids and bundles the above with one ``lower``/``keep_accents`` setting.

The in-graph version (tensorflow-text) of the same pipeline lives in
:mod:`xlnet_tf.tokenization.in_graph` and is tested to give identical ids.
"""
import os

import sentencepiece as spm

from xlnet_tf.tokenization.text import preprocess_text

SPIECE_UNDERLINE = "\u2581"  # "▁", SentencePiece's word-boundary marker.

# Special ids, hard-coded in the original data_utils.py (the spiece model puts the symbols
# there; every data pipeline and the model heads rely on these numbers).
UNK_ID = 0
BOS_ID = 1
EOS_ID = 2
CLS_ID = 3
SEP_ID = 4
PAD_ID = 5
MASK_ID = 6
EOD_ID = 7
EOP_ID = 8

SPECIAL_SYMBOLS = {
    "<unk>": UNK_ID,
    "<s>": BOS_ID,
    "</s>": EOS_ID,
    "<cls>": CLS_ID,
    "<sep>": SEP_ID,
    "<pad>": PAD_ID,
    "<mask>": MASK_ID,
    "<eod>": EOD_ID,
    "<eop>": EOP_ID,
}
# id -> symbol, for decoding.
SPECIAL_IDS = {i: s for s, i in SPECIAL_SYMBOLS.items()}

# Segment ids of the classification / RACE layout (classifier_utils.py). SEG_ID_SEP is
# defined but unused by the original: a SEP takes the id of the segment it closes.
SEG_ID_A = 0
SEG_ID_B = 1
SEG_ID_CLS = 2
SEG_ID_SEP = 3
SEG_ID_PAD = 4

# Segment ids of the SQuAD layout (run_squad.py): paragraph first, then question.
SQUAD_SEG_ID_P = 0
SQUAD_SEG_ID_Q = 1
SQUAD_SEG_ID_CLS = 2
SQUAD_SEG_ID_PAD = 3

# Subword-regularisation settings of the original when sample=True.
SAMPLE_NBEST_SIZE = 64
SAMPLE_ALPHA = 0.1


def _is_digit_comma_piece(piece):
    """True for pieces like ``▁2000,`` or ``3,``: length > 1, ends in ``,`` after a digit."""
    return len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()


def encode_pieces(sp_model, text, sample=False):
    """SentencePiece pieces of ``text`` with the original digit–comma rule.

    SentencePiece often learns pieces that glue a trailing comma to a number
    (``▁2000,``); the original splits such a piece so numbers look the same with or
    without the comma:

    * re-encode the piece without its final comma and with every ``▁`` removed;
    * if the original piece did not start with ``▁`` but the first re-encoded piece
      does (SentencePiece adds a dummy-prefix ``▁``), drop that ``▁`` — the whole first
      piece if it was only ``▁``;
    * emit the re-encoded pieces followed by a separate ``,`` piece.

    ``text`` should already have gone through :func:`preprocess_text`.

    Args:
      sp_model: a ``sentencepiece.SentencePieceProcessor``.
      text: ``str``.
      sample: subword regularisation (``nbest_size=64, alpha=0.1``, as the original);
        not used by any shipped script.
    Returns:
      list of piece strings.
    """
    if sample:
        pieces = sp_model.SampleEncodeAsPieces(text, SAMPLE_NBEST_SIZE, SAMPLE_ALPHA)
    else:
        pieces = sp_model.EncodeAsPieces(text)
    new_pieces = []
    for piece in pieces:
        if not _is_digit_comma_piece(piece):
            new_pieces.append(piece)
            continue
        cur_pieces = sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
        if (piece[0] != SPIECE_UNDERLINE and cur_pieces
                and cur_pieces[0][0] == SPIECE_UNDERLINE):
            if len(cur_pieces[0]) == 1:
                cur_pieces = cur_pieces[1:]
            else:
                cur_pieces[0] = cur_pieces[0][1:]
        new_pieces.extend(cur_pieces)
        new_pieces.append(piece[-1])
    return new_pieces


def encode_ids(sp_model, text, sample=False):
    """Ids of :func:`encode_pieces` (``PieceToId`` of each piece; unknown surfaces → 0)."""
    return [sp_model.PieceToId(piece) for piece in encode_pieces(sp_model, text, sample=sample)]


def _load_processor(model_proto, source):
    """Builds a SentencePieceProcessor from serialized bytes; ``source`` names it in errors."""
    sp_model = spm.SentencePieceProcessor()
    try:
        ok = sp_model.LoadFromSerializedProto(model_proto)
    except Exception as e:  # sentencepiece raises RuntimeError/OSError with terse text.
        raise ValueError(
            f"{source} is not a valid SentencePiece model ({e}). Pass the 'spiece.model' file "
            f"that came with the checkpoint, or train one with `python -m xlnet_tf.tokenization.train_spm`."
        ) from None
    if ok is False or sp_model.GetPieceSize() == 0:
        raise ValueError(f"{source} is not a valid SentencePiece model (it loaded with no pieces).")
    return sp_model


def check_special_symbols(sp_model, source="the SentencePiece model"):
    """Raises ValueError unless ``<unk> <s> </s> <cls> <sep> <pad> <mask> <eod> <eop>`` are ids 0..8.

    A model trained for another project loads fine but would silently feed the wrong ids
    to the CLS/SEP/mask positions, so this is checked at load time.
    """
    size = sp_model.GetPieceSize()
    wrong = []
    for symbol, idx in SPECIAL_SYMBOLS.items():
        found = sp_model.IdToPiece(idx) if idx < size else None
        if found != symbol:
            wrong.append(f"id {idx}: expected {symbol!r}, found {found!r}")
    if wrong:
        raise ValueError(
            f"{source} does not have XLNet's special symbols at their fixed ids ("
            + "; ".join(wrong)
            + "). XLNet needs <unk>0 <s>1 </s>2 <cls>3 <sep>4 <pad>5 <mask>6 <eod>7 <eop>8: use the "
            "spiece.model shipped with the checkpoint, or train one with `python -m xlnet_tf.tokenization.train_spm`."
        )


class Tokenizer:
    """XLNet tokenizer: the original text rules + a SentencePiece model with XLNet's specials.

    ``encode_ids(text)`` is the original pipeline
    ``encode_ids(sp, preprocess_text(text, lower=lower, keep_accents=keep_accents))``.

    Args:
      spiece_model_path: path of a SentencePiece ``.model`` file (e.g. ``spiece.model``).
      lower: lower-case text (the original ``--uncased`` flag; released models are cased).
      keep_accents: keep combining characters (the original never sets it).
    """

    def __init__(self, spiece_model_path, lower=False, keep_accents=False):
        path = os.fspath(spiece_model_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"SentencePiece model file {path!r} does not exist (or is not a file). Pass the "
                f"'spiece.model' that came with the checkpoint, or train one with "
                f"`python -m xlnet_tf.tokenization.train_spm`."
            )
        with open(path, "rb") as f:
            model_proto = f.read()
        self._init_from_proto(model_proto, f"SentencePiece model file {path!r}", lower, keep_accents)
        self.spiece_model_path = path

    @classmethod
    def from_preset(cls, path, lower=False, keep_accents=False):
        """The tokenizer of a preset folder (an original release, a Hugging Face folder or
        one of our output folders: :mod:`xlnet_tf.presets`): its ``spiece.model``."""
        from xlnet_tf.presets import spiece_of_preset
        return cls(spiece_of_preset(path), lower=lower, keep_accents=keep_accents)

    @classmethod
    def from_serialized_proto(cls, model_proto, lower=False, keep_accents=False):
        """Builds a Tokenizer from the bytes of a ``.model`` file (e.g. a SavedModel asset)."""
        if not isinstance(model_proto, (bytes, bytearray)):
            raise TypeError(f"model_proto must be bytes, got {type(model_proto).__name__}")
        self = cls.__new__(cls)
        self._init_from_proto(bytes(model_proto), "the serialized SentencePiece model", lower, keep_accents)
        self.spiece_model_path = None
        return self

    def _init_from_proto(self, model_proto, source, lower, keep_accents):
        self.lower = bool(lower)
        self.keep_accents = bool(keep_accents)
        self._model_proto = model_proto
        self.sp_model = _load_processor(model_proto, source)
        check_special_symbols(self.sp_model, source)

    # -- text -> pieces / ids -------------------------------------------------------------
    def preprocess(self, text):
        """:func:`preprocess_text` with this tokenizer's ``lower``/``keep_accents``."""
        return preprocess_text(text, lower=self.lower, keep_accents=self.keep_accents)

    def encode_pieces(self, text, sample=False):
        """Pieces of ``preprocess(text)`` with the digit–comma rule."""
        return encode_pieces(self.sp_model, self.preprocess(text), sample=sample)

    def encode_ids(self, text, sample=False):
        """Ids of ``preprocess(text)`` with the digit–comma rule (the original pipeline)."""
        return encode_ids(self.sp_model, self.preprocess(text), sample=sample)

    # -- ids -> text ----------------------------------------------------------------------
    def decode(self, ids, skip_special_tokens=True):
        """Text of ``ids``.

        ``<unk>`` (0) is always rendered by SentencePiece (as `` ⁇ ``). The other special
        ids (1..8: ``<s> </s> <cls> <sep> <pad> <mask> <eod> <eop>``) are dropped when
        ``skip_special_tokens``, otherwise written as their symbol, separated by single
        spaces from the surrounding text.
        """
        ids = [int(i) for i in ids]
        size = self.vocab_size
        bad = [i for i in ids if not 0 <= i < size]
        if bad:
            raise ValueError(f"decode: ids {bad[:5]} are outside the vocabulary [0, {size}).")
        parts, run = [], []
        for i in ids:
            if i != UNK_ID and i in SPECIAL_IDS:
                if run:
                    parts.append(self.sp_model.DecodeIds(run))
                    run = []
                if not skip_special_tokens:
                    parts.append(SPECIAL_IDS[i])
            else:
                run.append(i)
        if run:
            parts.append(self.sp_model.DecodeIds(run))
        return " ".join(p for p in parts if p)

    # -- vocabulary -----------------------------------------------------------------------
    def id_to_piece(self, idx):
        return self.sp_model.IdToPiece(int(idx))

    def piece_to_id(self, piece):
        return self.sp_model.PieceToId(piece)

    def ids_to_pieces(self, ids):
        return [self.sp_model.IdToPiece(int(i)) for i in ids]

    @property
    def vocab_size(self):
        return self.sp_model.GetPieceSize()

    def serialized_model_proto(self):
        """The bytes of the SentencePiece model (for in-graph tokenization / SavedModel assets)."""
        return self._model_proto

    def __repr__(self):
        src = self.spiece_model_path or "<serialized proto>"
        return (f"Tokenizer({src!r}, vocab_size={self.vocab_size}, lower={self.lower}, "
                f"keep_accents={self.keep_accents})")
