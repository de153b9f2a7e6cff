"""Helpers shared by the tokenization tests (not a test module).

``model_with_extra_pieces`` derives a SentencePiece model from the committed fixture by
appending pieces. SentencePiece >= 0.1.9x never learns pieces that glue a comma to a digit
(so the small fixture has none), but the original XLNet vocabulary was trained with an older
release and its digit–comma rule exists for exactly such pieces (``▁2000,``). Appending a few
of them with a high score makes the Viterbi segmentation pick them, so the rule is exercised
on text.
"""
import pathlib

from sentencepiece import sentencepiece_model_pb2

FIXTURE_MODEL = pathlib.Path(__file__).resolve().parent / "fixtures" / "spiece_test.model"

# Pieces ending in digit + comma, chosen to hit every branch of the rule:
#   "▁2000,"  starts with ▁                    -> re-encode "2000", keep its ▁
#   "00,"     mid-word, re-encodes as "▁","00" -> drop the lone "▁" piece
#   "2,"      mid-word, re-encodes as "▁2"     -> strip the ▁ from "▁2"
#   "▁19,"    starts with ▁, "19" -> "▁19"
#   "\u0663,"  a non-ASCII digit (ARABIC-INDIC THREE: str.isdigit() is True, "\u0663" alone is unknown)
DIGIT_COMMA_PIECES = ("\u25812000,", "00,", "2,", "\u258119,", "\u0663,")


def model_with_extra_pieces(pieces=DIGIT_COMMA_PIECES, score=0.0, base=FIXTURE_MODEL):
    """Serialized model = ``base`` + ``pieces`` (NORMAL type, given score) at the end of the vocab."""
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(pathlib.Path(base).read_bytes())
    existing = {p.piece for p in proto.pieces}
    for piece in pieces:
        assert piece not in existing, piece
        new = proto.pieces.add()
        new.piece = piece
        new.score = score
        new.type = sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL
    proto.trainer_spec.vocab_size = len(proto.pieces)
    return proto.SerializeToString()
