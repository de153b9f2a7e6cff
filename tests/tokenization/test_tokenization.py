# The committed fixture tests/fixtures/spiece_test.model (2000 pieces, unigram) was made, from
# the repository root, with exactly ($DATA: the folder of the real data sets):
#
#   python -m xlnet_tf.tokenization.train_spm \
#     --input "$DATA/pretrain_text/gutenberg/*.txt,$DATA/pretrain_text/wikitext2_valid.tokens.txt" \
#     --model_prefix tests/fixtures/spiece_test --vocab_size 2000 --character_coverage 0.99995 \
#     --seed 1234 --num_threads 2 --allow_invalid_utf8
#   rm tests/fixtures/spiece_test.vocab
#
# (two Gutenberg files, chesterton-ball.txt and shakespeare-caesar.txt, hold 2 Latin-1 lines
# each, hence --allow_invalid_utf8; SentencePiece turns those bytes into U+FFFD.) The corpus is
# nearly all ASCII English, so accented letters are rare; in wikitext "<unk>" is a reserved
# string the trainer skips, so "<" and ">" are outside the alphabet (they encode as <unk>).
"""Tests of xlnet_tf/tokenization.py: text rules, digit–comma rule, special ids, Tokenizer."""
import json

import pytest
import sentencepiece as spm

from xlnet_tf.tokenization import tokenizer as T
from spm_test_utils import DIGIT_COMMA_PIECES, FIXTURE_MODEL, model_with_extra_pieces

U = T.SPIECE_UNDERLINE


@pytest.fixture(scope="module")
def tok():
    return T.Tokenizer(FIXTURE_MODEL)


@pytest.fixture(scope="module")
def tok_dc():
    """Fixture model + pieces that glue a comma to a digit (see spm_test_utils)."""
    return T.Tokenizer.from_serialized_proto(model_with_extra_pieces())


# ---------------------------------------------------------------------------------------
# preprocess_text
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("  a  b\t\tc\n", "a b c"),
    ("\u00a0x\u3000\u2009y\u2028z\x1c ", "x y z"),       # Unicode spaces count (str.split)
    ("", ""),
    (" \t\n ", ""),
])
def test_whitespace_collapse(text, expected):
    assert T.preprocess_text(text) == expected


def test_remove_space_false_keeps_whitespace():
    assert T.preprocess_text("  a  b ", remove_space=False) == "  a  b "


@pytest.mark.parametrize("text, expected", [
    ("``Hello,'' he said", '"Hello," he said'),
    ("'''", "\"'"),                 # left to right, non-overlapping, like str.replace
    ("````", '""'),
    ("it's 'quoted'", "it's 'quoted'"),  # single quotes untouched
])
def test_latex_quotes(text, expected):
    assert T.preprocess_text(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("café", "cafe"),
    ("naïve Zoë façade", "naive Zoe facade"),
    ("Å\u0301", "A"),                 # precomposed + extra combining mark
    ("ﬁne ﬂow", "fine flow"),         # ligatures via NFKD (compatibility)
    ("Ｆｕｌｌ１", "Full1"),            # full-width forms
    ("x²", "x2"),
    ("½", "1\u20442"),                # fraction slash stays (not a combining char)
])
def test_accent_stripping_and_nfkd(text, expected):
    assert T.preprocess_text(text) == expected


def test_keep_accents_keeps_original_code_points():
    assert T.preprocess_text("café ﬁ", keep_accents=True) == "café ﬁ"


def test_lower_is_applied_last():
    assert T.preprocess_text("ÉCOLE Straße", lower=True) == "ecole straße"  # lower, not casefold
    # 'İ' → NFKD 'I'+U+0307 → mark dropped → 'i'. With accents kept, str.lower gives 'i'+U+0307.
    assert T.preprocess_text("İ", lower=True) == "i"
    assert T.preprocess_text("İ", lower=True, keep_accents=True) == "i\u0307"
    assert T.preprocess_text("ΟΔΟΣ", lower=True) == "οδος"                  # final sigma
    assert T.preprocess_text("ABC") == "ABC"


def test_preprocess_accepts_bytes_rejects_others():
    assert T.preprocess_text("caf\u00e9".encode("utf-8")) == "cafe"
    with pytest.raises(TypeError, match="str or bytes"):
        T.preprocess_text(123)


# ---------------------------------------------------------------------------------------
# special ids, loading
# ---------------------------------------------------------------------------------------
def test_constants():
    assert [T.UNK_ID, T.BOS_ID, T.EOS_ID, T.CLS_ID, T.SEP_ID, T.PAD_ID, T.MASK_ID, T.EOD_ID,
            T.EOP_ID] == list(range(9))
    assert T.SPECIAL_SYMBOLS == {"<unk>": 0, "<s>": 1, "</s>": 2, "<cls>": 3, "<sep>": 4,
                                 "<pad>": 5, "<mask>": 6, "<eod>": 7, "<eop>": 8}
    assert (T.SEG_ID_A, T.SEG_ID_B, T.SEG_ID_CLS, T.SEG_ID_SEP, T.SEG_ID_PAD) == (0, 1, 2, 3, 4)
    assert (T.SQUAD_SEG_ID_P, T.SQUAD_SEG_ID_Q, T.SQUAD_SEG_ID_CLS, T.SQUAD_SEG_ID_PAD) == (0, 1, 2, 3)
    assert T.SPIECE_UNDERLINE == "\u2581"


def test_fixture_special_ids(tok):
    assert FIXTURE_MODEL.stat().st_size < 400_000
    assert tok.vocab_size == 2000
    assert tok.ids_to_pieces(range(17)) == ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>",
                                            "<mask>", "<eod>", "<eop>", ".", "(", ")", '"', "-",
                                            "–", "£", "€"]
    for sym, idx in T.SPECIAL_SYMBOLS.items():
        assert tok.piece_to_id(sym) == idx and tok.id_to_piece(idx) == sym
    sp = tok.sp_model
    assert sp.IsUnknown(0)
    assert all(sp.IsControl(i) for i in range(1, 8))     # never produced from text
    assert not sp.IsControl(8)                            # <eop> is user-defined: text "<eop>" → 8
    assert tok.encode_ids("end of paragraph<eop>")[-1] == T.EOP_ID
    assert T.CLS_ID not in tok.encode_ids("<cls> <sep> <mask>")


def test_missing_model_path(tmp_path):
    missing = tmp_path / "nope" / "spiece.model"
    with pytest.raises(FileNotFoundError, match="nope/spiece.model"):
        T.Tokenizer(missing)
    with pytest.raises(FileNotFoundError, match="not a file"):
        T.Tokenizer(tmp_path)


def test_invalid_model_file(tmp_path):
    bad = tmp_path / "spiece.model"
    bad.write_text("this is not a sentencepiece model\n")
    with pytest.raises(ValueError, match="not a valid SentencePiece model"):
        T.Tokenizer(bad)
    empty = tmp_path / "empty.model"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.model"):
        T.Tokenizer(empty)


def test_model_without_xlnet_symbols_is_rejected(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 50)
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "plain"),
                                   vocab_size=25, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(ValueError, match=r"id 3: expected '<cls>'"):
        T.Tokenizer(tmp_path / "plain.model")


def test_serialized_proto_round_trip(tok):
    proto = tok.serialized_model_proto()
    assert proto == FIXTURE_MODEL.read_bytes()
    other = T.Tokenizer.from_serialized_proto(proto, lower=True)
    text = "The Quick 1,000, brown Fox."
    assert other.encode_ids(text) == T.encode_ids(tok.sp_model, T.preprocess_text(text, lower=True))
    with pytest.raises(TypeError):
        T.Tokenizer.from_serialized_proto("not bytes")


# ---------------------------------------------------------------------------------------
# encode_pieces / encode_ids, digit–comma rule
# ---------------------------------------------------------------------------------------
def test_tokenizer_is_the_original_pipeline(tok):
    text = "  ``Café'' costs £5,000,  naïvely. "
    pre = T.preprocess_text(text)
    assert pre == '"Cafe" costs £5,000, naively.'
    assert tok.encode_pieces(text) == T.encode_pieces(tok.sp_model, pre)
    assert tok.encode_ids(text) == T.encode_ids(tok.sp_model, pre)
    assert tok.encode_ids(text) == [tok.piece_to_id(p) for p in tok.encode_pieces(text)]
    # '"' (12) and '£' (15) are user-defined pieces: always their own piece.
    ids = tok.encode_ids(text)
    assert ids.count(12) == 2 and ids.count(15) == 1


def test_fixture_has_no_digit_comma_pieces(tok):
    """Why the rule is tested on a derived model: SentencePiece 0.2 never learns such pieces."""
    pieces = tok.ids_to_pieces(range(tok.vocab_size))
    assert not [p for p in pieces if len(p) > 1 and p[-1] == "," and p[-2].isdigit()]
    text = "1,000, 2000, and 3,"
    assert tok.encode_pieces(text) == tok.sp_model.EncodeAsPieces(text)


def test_digit_comma_rule_each_branch(tok_dc):
    sp = tok_dc.sp_model
    text = "In 2000, 1,000, 12, x2, 19, and 1900,"
    # SentencePiece alone glues the commas (the added pieces win the Viterbi search).
    assert sp.EncodeAsPieces(text) == [
        U + "In", U + "2000,", U, "1", ",", "0", "00,", U, "1", "2,", U, "x", "2,", U + "19,",
        U + "and", U + "19", "00,"]
    # Hand-derived from the original's digit-comma rule, with the fixture's pieces for the
    # bare numbers:
    #   "▁2000," -> encode("2000") = ▁200 0 (starts with ▁: keep)            + ","
    #   "00,"    -> encode("00")   = ▁ 00   (no ▁ originally: lone ▁ dropped) + ","
    #   "2,"     -> encode("2")    = ▁2     (no ▁ originally: ▁ stripped)     + ","
    #   "▁19,"   -> encode("19")   = ▁19                                      + ","
    assert sp.EncodeAsPieces("2000") == [U + "200", "0"]
    assert sp.EncodeAsPieces("00") == [U, "00"]
    assert sp.EncodeAsPieces("2") == [U + "2"]
    expected = [U + "In", U + "200", "0", ",", U, "1", ",", "0", "00", ",", U, "1", "2", ",",
                U, "x", "2", ",", U + "19", ",", U + "and", U + "19", "00", ","]
    assert tok_dc.encode_pieces(text) == expected
    assert tok_dc.encode_ids(text) == [sp.PieceToId(p) for p in expected]
    # The rule never changes the text the pieces spell.
    assert "".join(expected).replace(U, " ").strip() == text


def test_digit_comma_rule_unicode_digit(tok_dc):
    """str.isdigit() decides, so a non-ASCII digit counts; the bare "\u0663" is <unk>."""
    sp = tok_dc.sp_model
    assert sp.EncodeAsPieces("x\u0663, y") == [U, "x", "\u0663,", U, "y"]
    assert sp.EncodeAsPieces("\u0663") == [U, "\u0663"]
    assert tok_dc.encode_pieces("x\u0663, y") == [U, "x", "\u0663", ",", U, "y"]
    assert tok_dc.encode_ids("x\u0663, y") == [sp.PieceToId(U), sp.PieceToId("x"), T.UNK_ID,
                                                sp.PieceToId(","), sp.PieceToId(U), sp.PieceToId("y")]


def test_digit_comma_rule_brief_example(tok_dc):
    pieces = tok_dc.encode_pieces("1,000, 2000, and 3,")
    assert pieces == [U, "1", ",", "0", "00", ",", U + "200", "0", ",", U + "and", U + "3", ","]
    for i, p in enumerate(pieces):
        assert not (len(p) > 1 and p[-1] == "," and p[-2].isdigit()), p
        if p == ",":
            assert pieces[i - 1][-1].isdigit() or pieces[i - 1] == U


def test_non_digit_comma_pieces_untouched(tok):
    """A piece ending in ',' after a non-digit is left alone (",," style and "a," cases)."""
    sp = tok.sp_model
    for text in ["a, b,, c", "x,", ",", "1 ,"]:
        assert tok.encode_pieces(text) == sp.EncodeAsPieces(T.preprocess_text(text))


def test_sampling_keeps_text_and_rule(tok_dc):
    text = "In 2000, 1,000, 12, and 1900, the 19, men"
    for _ in range(20):
        pieces = tok_dc.encode_pieces(text, sample=True)
        assert "".join(pieces).replace(U, " ").strip() == text
        assert not [p for p in pieces if len(p) > 1 and p[-1] == "," and p[-2].isdigit()]


def test_empty_and_whitespace_inputs(tok):
    assert tok.encode_ids("") == []
    assert tok.encode_ids(" \t\n") == []
    assert tok.encode_pieces("\u3000") == []


# ---------------------------------------------------------------------------------------
# decode
# ---------------------------------------------------------------------------------------
def test_decode_special_ids(tok):
    ids = tok.encode_ids("Hello world")
    assert tok.decode(ids) == "Hello world"
    with_specials = [T.CLS_ID] + ids + [T.SEP_ID, T.EOD_ID]
    assert tok.decode(with_specials) == "Hello world"
    assert tok.decode(with_specials, skip_special_tokens=False) == "<cls> Hello world <sep> <eod>"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([5, 2000])


def _real_lines(shared_data):
    wiki = [line for line in (shared_data / "pretrain_text/wikitext2_valid.tokens.txt")
            .read_text(encoding="utf-8").splitlines() if line.strip()][:2000]
    squad = json.loads((shared_data / "squad/dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    contexts = [p["context"] for article in squad[:5] for p in article["paragraphs"]]
    return wiki, contexts


def test_decode_round_trip_on_real_text(tok, tok_dc, shared_data):
    wiki, contexts = _real_lines(shared_data)
    checked = 0
    for t in (tok, tok_dc):
        for line in wiki + contexts:
            ids = t.encode_ids(line)
            if T.UNK_ID in ids:   # "<unk>" strings of wikitext, rare symbols
                continue
            assert t.decode(ids) == t.preprocess(line), line
            checked += 1
    # 514 wikitext lines + 253 SQuAD contexts have no unknown character, per model.
    assert checked == 2 * (514 + 253)


def test_real_text_never_keeps_digit_comma_pieces(tok_dc, shared_data):
    wiki, contexts = _real_lines(shared_data)
    n_split = 0
    for line in wiki + contexts:
        raw = tok_dc.sp_model.EncodeAsPieces(tok_dc.preprocess(line))
        pieces = tok_dc.encode_pieces(line)
        n_split += sum(1 for p in raw if p in DIGIT_COMMA_PIECES)
        assert not [p for p in pieces if len(p) > 1 and p[-1] == "," and p[-2].isdigit()]
        assert "".join(pieces).replace(U, " ").strip() == "".join(raw).replace(U, " ").strip()
    assert n_split >= 30  # the rule really fired on real text (37 pieces with this fixture)
