"""Document context (run_ner.py --doc_context_len) as Transformer-XL memory: a window read
with its context as memory gives the logits of the model on [context; window] with the
context blind to the window (numbers, 1e-5); a window without context gives the logits of
the model without memory; the context is the document's last pieces before the window and
never crosses a -DOCSTART- line; the setting is recorded in the output folder so a later
--do_predict / export uses it, and bad values are refused naming the flag."""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from refusal_utils import assert_refused, run_script, snapshot
from xlnet_tf import XLNetConfig
from xlnet_tf.classification.features import pack_ids
from xlnet_tf.tokenization.tokenizer import Tokenizer
from xlnet_tf.token_classification.alignment import align_words
from xlnet_tf.token_classification.data import build_windows
from xlnet_tf.token_classification.model import XLNetTokenClassifier
from xlnet_tf.token_classification.readers import read_conll

FIXTURE_SPM = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model")
CONFIG = XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=60,
                     dropout=0.0, dropatt=0.0, init_std=0.3)
N, T = 6, 10


def tiny_tagger(context_len=N, seed=0):
    model = XLNetTokenClassifier(CONFIG, 5, context_len=context_len)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    return model


def batch(context_lengths, window_lengths, seed=1):
    """Windows packed as run_ner packs them, with contexts of the given piece counts."""
    rng = np.random.default_rng(seed)
    rows = [pack_ids(rng.integers(9, 60, n).tolist(), None, T) for n in window_lengths]
    ctx_ids = np.zeros([len(rows), N], np.int32)
    ctx_mask = np.ones([len(rows), N], np.float32)
    for i, n in enumerate(context_lengths):
        if n:
            ctx_ids[i, N - n:] = rng.integers(9, 60, n)
            ctx_mask[i, N - n:] = 0.0
    return {"input_ids": tf.constant([r[0] for r in rows], tf.int32),
            "input_mask": tf.constant([r[1] for r in rows], tf.float32),
            "seg_ids": tf.constant([r[2] for r in rows], tf.int32),
            "context_ids": tf.constant(ctx_ids), "context_mask": tf.constant(ctx_mask)}


def concatenated_logits(model, feats):
    """The backbone over [context; window] in one forward (content stream, no memory):
    context rows may not attend the window (perm_mask), padding masked, context segment 0;
    then the head on the window's positions."""
    b = feats["input_ids"].shape[0]
    ctx_mask = feats["context_mask"].numpy()
    seg = np.where(ctx_mask > 0.5, 4, 0).astype(np.int32)
    perm = np.zeros([b, N + T, N + T], np.float32)
    perm[:, :N, N:] = 1.0                       # the context does not see the window
    joined = {"input_ids": tf.concat([feats["context_ids"], feats["input_ids"]], 1),
              "seg_ids": tf.concat([tf.constant(seg), feats["seg_ids"]], 1),
              "input_mask": tf.concat([feats["context_mask"], feats["input_mask"]], 1),
              "perm_mask": tf.constant(perm)}
    hidden = model.transformer(joined, training=False)["hidden"][:, N:]     # [B, T, d]
    return model.logit(hidden).numpy()


@pytest.mark.parametrize("graph", [False, True])
def test_memory_equals_the_concatenation(graph):
    model = tiny_tagger()
    # full context, partial context (padding inside the memory), none, a short window
    feats = batch([6, 3, 0, 2], [8, 5, 7, 1])
    call = tf.function(lambda f: model(f)["logits"]) if graph else \
        (lambda f: model(f)["logits"])
    got = call(feats).numpy()
    want = concatenated_logits(model, feats)
    real = feats["input_mask"].numpy() < 0.5                             # the window's pieces
    np.testing.assert_allclose(got[real], want[real], atol=1e-5, rtol=0)
    # the context changes the answer (else the test proves nothing) ...
    plain = {k: feats[k] for k in ("input_ids", "input_mask", "seg_ids")}
    alone = model(plain)["logits"].numpy()
    assert np.abs(got[0][real[0]] - alone[0][real[0]]).max() > 1e-2
    # ... except for the window without any (a document's first sentence)
    np.testing.assert_allclose(got[2][real[2]], alone[2][real[2]], atol=1e-5, rtol=0)


def test_a_batch_without_context_reads_as_without_memory():
    """Every row's context is padding: the memory segment is skipped (zeros, masked), the
    logits are those of the same model without memory."""
    model = tiny_tagger()
    feats = batch([0, 0], [8, 3])
    plain = {k: feats[k] for k in ("input_ids", "input_mask", "seg_ids")}
    got = tf.function(lambda f: model(f)["logits"])(feats).numpy()
    np.testing.assert_allclose(got, model(plain)["logits"].numpy(), atol=1e-5, rtol=0)


def test_wrong_context_width_refused():
    with pytest.raises(ValueError, match="reads a context of 6"):
        tiny_tagger()(dict(batch([1], [2]), context_ids=tf.zeros([1, 4], tf.int32),
                           context_mask=tf.zeros([1, 4])))


DOCS = ("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\n\n"
        "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n\n"
        "-DOCSTART- -X- O O\n\nBRUSSELS NNP I-NP I-LOC\n1996-08-22 CD I-NP O\n\n"
        "Germany NNP I-NP I-LOC\n's POS B-NP O\nrepresentative NN I-NP O\n\n")


def test_context_is_the_documents_last_pieces_and_stops_at_docstart(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text(DOCS)
    sentences = read_conll(str(path))
    tok = Tokenizer(FIXTURE_SPM)
    pieces = [align_words(tok, s.words).ids for s in sentences]
    assert [len(p) for p in pieces][:2] == [7, 8]              # EU rejects German | Peter ..
    tags = ["O", "B-LOC", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    windows, _ = build_windows(sentences, tok, tags, 6, 2, context_len=N)
    by_sentence = {}
    for w in windows:
        by_sentence.setdefault(w.sentence, []).append(w)

    def context(w):
        return [i for i, m in zip(w.context_ids, w.context_mask) if m < 0.5]

    first = by_sentence[0]                      # 7 pieces, windows of 4 at 0, 2, 3
    assert len(first) == 3
    assert context(first[0]) == [] and first[0].context_mask == [1.0] * N
    assert context(first[1]) == pieces[0][:2]                  # the sentence's own pieces
    assert context(first[2]) == pieces[0][:3]
    assert first[1].context_ids == [0] * 4 + pieces[0][:2]     # left padding
    assert context(by_sentence[1][0]) == pieces[0][-N:]         # the previous sentence
    # the first sentence of the second document: nothing from the first document
    assert context(by_sentence[2][0]) == [] and by_sentence[2][0].context_mask == [1.0] * N
    assert context(by_sentence[3][0]) == (pieces[2])[-N:]
    # without -DOCSTART- lines the file is one document: the context runs on
    (tmp_path / "one.txt").write_text(DOCS.replace("-DOCSTART- -X- O O\n\n", ""))
    one, _ = build_windows(read_conll(str(tmp_path / "one.txt")), tok, tags, 6, 2,
                           context_len=N)
    third = [w for w in one if w.sentence == 2][0]
    assert context(third) == (pieces[0] + pieces[1])[-N:]
    # context 0: no context arrays, as before
    plain, _ = build_windows(sentences, tok, tags, 6, 2)
    assert plain[0].context_ids is None


# ---------------------------------------------------------------- run_ner.py end to end
TINY = ["--n_layer=1", "--d_model=16", "--n_head=2", "--d_head=8", "--d_inner=32",
        "--max_seq_length=16", "--doc_stride=8", "--train_batch_size=4", "--eval_batch_size=8",
        "--iterations=1", f"--spiece_model={FIXTURE_SPM}"]


def test_setting_recorded_and_used_by_predict_and_export(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(DOCS * 3)
    (data / "test.txt").write_text(DOCS)
    out = tmp_path / "out"
    code, stdout, err = run_script("run_ner", [f"--data_dir={data}", f"--output_dir={out}",
                                               "--do_train", "--train_steps=2",
                                               "--doc_context_len=12", *TINY])
    assert code == 0, err
    assert "up to 12 pieces of its document" in stdout
    assert json.loads((out / "tagger_config.json").read_text())["doc_context_len"] == 12
    assert json.loads((out / "task.json").read_text())["doc_context_len"] == 12
    # a later --do_predict and export without the flag read the folder's setting
    code, stdout, err = run_script("run_ner", [f"--data_dir={data}", f"--output_dir={out}",
                                               "--do_predict", f"--export_dir={tmp_path / 'e'}",
                                               *TINY])
    assert code == 0, err
    assert "predict data" in stdout and "up to 12 pieces of its document" in stdout
    assert "reads every sentence without document context" in stdout
    info = json.loads((tmp_path / "e" / "1" / "assets.extra" / "export_info.json").read_text())
    assert info["doc_context_len"] == 12 and "without document context" in info["context"]
    # another setting on that folder is another model: refused, nothing written
    before = snapshot(out)
    code, _, err = run_script("run_ner", [f"--data_dir={data}", f"--output_dir={out}",
                                          "--do_predict", "--doc_context_len=0", *TINY])
    assert_refused(code, err, "doc_context_len: output_dir has 12, this run has 0")
    assert snapshot(out) == before


@pytest.mark.parametrize("value", ["-1", "5000"])
def test_bad_doc_context_len_refused(tmp_path, value):
    code, _, err = run_script("run_ner", [f"--output_dir={tmp_path / 'out'}", "--data_dir=x",
                                          "--do_train", f"--doc_context_len={value}", *TINY])
    assert_refused(code, err, f"--doc_context_len={value} must be in [0, 1024]")
    assert not (tmp_path / "out").exists()
