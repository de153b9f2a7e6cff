"""Tests of xlnet_tf/tf_tokenization.py: the in-graph pipeline gives Python's ids exactly.

The reference is xlnet_tf.tokenization.tokenizer (itself tested against hand-written cases). Real text
comes from the real data sets through the ``shared_data`` fixture.
"""
import json
import unicodedata

import keras
import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf.tokenization import in_graph as TT
from xlnet_tf.tokenization import tokenizer as T
from spm_test_utils import FIXTURE_MODEL, model_with_extra_pieces

# Letters added in Unicode 14.0 that Python 3.11's str.lower maps but the ICU inside
# tf.strings.lower does not (yet): Glagolitic U+2C2F, Latin U+A7C0/A7D0/A7D6/A7D8 and the
# Vithkuqi capitals U+10570..U+10595.
_LOWER_UNICODE14 = {0x2C2F, 0xA7C0, 0xA7D0, 0xA7D6, 0xA7D8} | set(range(0x10570, 0x10596))


@pytest.fixture(scope="module")
def proto():
    return FIXTURE_MODEL.read_bytes()


@pytest.fixture(scope="module")
def proto_dc():
    return model_with_extra_pieces()


def _py_ids(proto, texts, lower=False):
    tok = T.Tokenizer.from_serialized_proto(proto, lower=lower)
    return [tok.encode_ids(t) for t in texts]


def _tf_ids(layer, texts, batch=1024):
    fn = tf.function(layer.call, input_signature=[tf.TensorSpec([None], tf.string)])
    out = []
    for i in range(0, len(texts), batch):
        ragged = fn(tf.constant(texts[i:i + batch]))
        assert ragged.dtype == tf.int32 and ragged.shape.rank == 2
        out.extend(ragged.to_list())
    return out


# ---------------------------------------------------------------------------------------
# text rules
# ---------------------------------------------------------------------------------------
EDGE_TEXTS = [
    "", " ", "  a  b\t\tc\n", "\u00a0x\u3000\u2009y\u2028z\x1c\x85 ", "\x0bv\x0cw\rq",
    "``Hello,'' he said", "'''", "````", "it's",
    "café naïve Zoë façade Å\u0301", "ﬁne ﬂow ﬃ", "Ｆｕｌｌ１ x² ½ ① ㎏ Ⅻ ǅ",
    "ÉCOLE Straße İstanbul ΟΔΟΣ ΣΑΣ Σ", "a\x00B\x00\x00C", "\x00", "漢字 😀 ٣,۴ १,",
]


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("keep_accents", [False, True])
def test_preprocess_edge_cases(lower, keep_accents):
    got = TT.preprocess_text(tf.constant(EDGE_TEXTS), lower=lower, keep_accents=keep_accents)
    want = [T.preprocess_text(t, lower=lower, keep_accents=keep_accents) for t in EDGE_TEXTS]
    assert [g.decode("utf-8") for g in got.numpy()] == want


def test_preprocess_hand_values_and_shape():
    x = tf.constant([["  ``Café''  ﬁ ", "ÀB"], ["\u3000", "x\x00Y"]])
    got = TT.preprocess_text(x, lower=True)
    assert got.shape == (2, 2)
    assert got.numpy().tolist() == [[b'"cafe" fi', b"ab"], [b"", b"x\x00y"]]
    assert TT.preprocess_text(tf.constant("ÀB")).numpy() == b"AB"


@pytest.mark.parametrize("lower, keep_accents", [(False, False), (True, True)])
def test_preprocess_every_code_point(lower, keep_accents):
    """Every code point below U+30000 (between two letters) goes through both pipelines.

    This checks the generated whitespace/combining classes and ICU's NFKD and lower-casing
    against Python's unicodedata (Unicode 14.0 in Python 3.11). Allowed differences:
    NFKD of code points Python does not know yet (category Cn; ICU's newer Unicode
    decomposes some), and lower-casing of 40 letters new in Unicode 14.0.
    """
    cps = [c for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF]
    texts = ["a" + chr(c) + "b" for c in cps]
    got = TT.preprocess_text(tf.constant(texts), lower=lower, keep_accents=keep_accents).numpy()
    diff = [c for c, g, t in zip(cps, got, texts)
            if g.decode("utf-8") != T.preprocess_text(t, lower=lower, keep_accents=keep_accents)]
    if keep_accents:
        assert set(diff) <= _LOWER_UNICODE14, [hex(c) for c in diff]
    else:
        assert all(unicodedata.category(chr(c)) == "Cn" for c in diff), [hex(c) for c in diff]
    # Sanity: the comparison covered the characters the rules are about.
    assert len(cps) > 190_000


# ---------------------------------------------------------------------------------------
# ids: hand-derived and vs Python
# ---------------------------------------------------------------------------------------
def test_digit_comma_rule_in_graph(proto_dc):
    layer = TT.XLNetTokenizerLayer(proto_dc)
    tok = T.Tokenizer.from_serialized_proto(proto_dc)
    u = T.SPIECE_UNDERLINE
    texts = ["In 2000, 1,000, 12, x2, 19, and 1900,", "1,000, 2000, and 3,", "", "no digits, here,",
             "x\u0663, y \u0663,"]
    expected_pieces = [
        [u + "In", u + "200", "0", ",", u, "1", ",", "0", "00", ",", u, "1", "2", ",",
         u, "x", "2", ",", u + "19", ",", u + "and", u + "19", "00", ","],
        [u, "1", ",", "0", "00", ",", u + "200", "0", ",", u + "and", u + "3", ","],
        [],
        tok.sp_model.EncodeAsPieces("no digits, here,"),
        [u, "x", "\u0663", ",", u, "y", u, "\u0663", ","],  # non-ASCII digit; bare "\u0663" is <unk>
    ]
    assert [tok.encode_pieces(t) for t in texts] == expected_pieces
    got = layer(tf.constant(texts)).to_list()
    assert got == [[tok.piece_to_id(p) for p in row] for row in expected_pieces]
    # In-graph pieces are vocabulary entries: unknown surfaces read "<unk>".
    pieces = layer.tokenize_pieces(tf.constant(texts)).to_list()
    assert [[p.decode("utf-8") for p in row] for row in pieces] == [
        [p if tok.piece_to_id(p) else "<unk>" for p in row] for row in expected_pieces]


def test_edge_texts_ids(proto, proto_dc):
    for pr in (proto, proto_dc):
        for lower in (False, True):
            layer = TT.XLNetTokenizerLayer(pr, lower=lower)
            assert _tf_ids(layer, EDGE_TEXTS) == _py_ids(pr, EDGE_TEXTS, lower=lower)


def _samples(shared_data):
    def nonblank(path, n):
        with open(path, encoding="utf-8") as f:
            return [line for line in f if line.strip()][:n]
    wiki = nonblank(shared_data / "pretrain_text/wikitext2_valid.tokens.txt", 2000)
    gutenberg = nonblank(shared_data / "pretrain_text/gutenberg/melville-moby_dick.txt", 2000)
    squad = json.loads((shared_data / "squad/dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    contexts = [p["context"] for article in squad[:5] for p in article["paragraphs"]]
    return {"wikitext2_valid[:2000]": wiki, "moby_dick[:2000]": gutenberg,
            "squad_dev_contexts[5 articles]": contexts}


@pytest.mark.parametrize("model, lower", [("fixture", False), ("digit_comma", False),
                                          ("fixture", True)])
def test_identical_ids_on_real_text(model, lower, proto, proto_dc, shared_data):
    pr = proto if model == "fixture" else proto_dc
    layer = TT.XLNetTokenizerLayer(pr, lower=lower)
    counts = {}
    for name, lines in _samples(shared_data).items():
        got, want = _tf_ids(layer, lines), _py_ids(pr, lines, lower=lower)
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        assert not bad, (f"{name}: {len(bad)}/{len(lines)} lines differ, first: {lines[bad[0]]!r}\n"
                         f"tf: {got[bad[0]]}\npy: {want[bad[0]]}")
        counts[name] = len(lines)
    assert counts == {"wikitext2_valid[:2000]": 2000, "moby_dick[:2000]": 2000,
                      "squad_dev_contexts[5 articles]": 288}


@pytest.mark.xfail(strict=True, reason=(
    "exact score ties: SentencePiece keeps the first of two candidates that are equal after "
    "float32 rounding of the accumulated path score; FastSentencepieceTokenizer (and "
    "tensorflow-text's SentencepieceTokenizer) break them differently (open, issue 14)"))
def test_score_tie_in_graph_equals_python(proto, shared_data):
    """QNLI dev '22,000-14,000' (an en dash): Python ', 0 00', in-graph ', 00 0'.  Strict, so
    the fix of the tie turns this test red until the marker is removed."""
    rows = [line.split("\t") for line in
            (shared_data / "glue/QNLI/dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    texts = [t for row in rows for t in row[1:3] if "22,000\u201314,000" in t]
    texts.append("22,000\u201314,000")
    assert len(texts) >= 3
    layer = TT.XLNetTokenizerLayer(proto)
    assert _tf_ids(layer, texts) == _py_ids(proto, texts)


# ---------------------------------------------------------------------------------------
# graph / export behaviour
# ---------------------------------------------------------------------------------------
def test_batch_edge_shapes(proto):
    layer = TT.XLNetTokenizerLayer(proto)
    empty = layer(tf.constant([], dtype=tf.string))
    assert empty.shape[0] == 0 and empty.dtype == tf.int32
    blank = layer(tf.constant(["", "  "])).to_list()
    assert blank == [[], []]
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        layer(tf.constant([["a", "b"]]))


def test_tf_data_map(proto):
    layer = TT.XLNetTokenizerLayer(proto)
    texts = ["The cat sat.", "In 1,000, years", ""]
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(layer)
    got = [row for batch in ds for row in batch.to_list()]
    assert got == _py_ids(proto, texts)


def test_export_archive_round_trip(proto_dc, tmp_path):
    texts = ["In 2000, 1,000, 12, x2, 19, and 1900,", "Café ``quoted''", ""]
    want = _py_ids(proto_dc, texts, lower=True)
    layer = TT.XLNetTokenizerLayer(proto_dc, lower=True)
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint("tokenize", layer.call, input_signature=[tf.TensorSpec([None], tf.string)])
    archive.write_out(str(tmp_path / "tok"), verbose=False)
    del archive, layer
    restored = tf.saved_model.load(str(tmp_path / "tok"))
    assert restored.tokenize(tf.constant(texts)).to_list() == want


def test_config_round_trip(proto):
    layer = TT.XLNetTokenizerLayer(proto, lower=True, name="tok")
    config = layer.get_config()
    json.dumps(config)  # JSON-serialisable (the proto travels as base64)
    clone = TT.XLNetTokenizerLayer.from_config(config)
    assert clone.lower and not clone.keep_accents and clone.name == "tok"
    assert clone.serialized_model_proto() == proto
    texts = tf.constant(["ÉCOLE 1,000, x"])
    np.testing.assert_array_equal(clone(texts).flat_values, layer(texts).flat_values)


def test_layer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.model"):
        TT.XLNetTokenizerLayer(tmp_path / "missing.model")
    with pytest.raises(ValueError, match="not a valid SentencePiece model"):
        TT.XLNetTokenizerLayer(b"garbage bytes")
