"""Embeddings (python -m xlnet_tf.extract_features and the library call): per-token vectors
are the backbone's hidden states, pooled vectors a NumPy pooling of them, and a text's
vectors do not depend on the batch it is read in (padding, longer neighbours)."""
import importlib
import json
import pathlib

import numpy as np
import pytest

from xlnet_tf import cli
from xlnet_tf.modeling.config import XLNetConfig

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "spiece_test.model"
TEXTS = ["A gorgeous, witty film.", "Dull.",
         "The 2,000 cafés of the old town were closed for the whole of the long winter, "
         "and nobody could remember why.", "", "ok ok ok"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random model written as an original-named checkpoint with its config."""
    from xlnet_tf import save_original_checkpoint
    from xlnet_tf.modeling.model import XLNetModel
    d = tmp_path_factory.mktemp("ckpt")
    config = XLNetConfig(n_token=2000, n_layer=3, d_model=32, n_head=2, d_head=16, d_inner=64,
                         dropout=0.0, dropatt=0.0)
    model = XLNetModel(config, name="transformer")
    model({"input_ids": np.zeros([1, 8], np.int32)})
    rng = np.random.default_rng(0)
    for v in model.weights:               # no term hidden behind a 0/1 initialisation
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    config.to_json(str(d / "xlnet_config.json"))
    save_original_checkpoint(model, str(d / "xlnet_model.ckpt"))
    return d


@pytest.fixture(scope="module")
def encoder(checkpoint):
    from xlnet_tf.extract_features import load_encoder
    return load_encoder(str(checkpoint / "xlnet_model.ckpt"), str(FIXTURE), max_seq_length=64)


def test_token_vectors_are_the_backbone_hidden_states(encoder):
    """Per-piece vectors of layer -1 / -2 / 0 are the model's last output, the input of its
    last layer and the word embeddings at the text's positions (the packed input run
    directly through the backbone)."""
    got = encoder.encode(TEXTS[:3], layers=[-1, -2, 0], pooling="none", batch_size=8)
    model = encoder.model
    d = model.xlnet_config.d_model
    for text, (pieces, vec) in zip(TEXTS[:3], got):
        batch, ids = encoder.pack([text])
        out = model(batch, training=False)
        n, T = len(ids[0]), batch["input_ids"].shape[1]
        assert pieces == [encoder.tokenizer.id_to_piece(i) for i in ids[0]] and len(pieces) == n
        np.testing.assert_allclose(vec[:, :d], out["hidden"].numpy()[0, T - 2 - n:T - 2],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(vec[:, d:2 * d], out["new_mems"][2].numpy()[0, T - 2 - n:T - 2],
                                   rtol=1e-5, atol=1e-5)
        emb = model.word_embedding.numpy()[ids[0]]
        np.testing.assert_allclose(vec[:, 2 * d:], emb, rtol=1e-6)


def test_pooled_vectors_are_numpy_poolings_of_the_token_vectors(encoder):
    tokens = encoder.encode(TEXTS, layers=[-1], pooling="none")
    mean = encoder.encode(TEXTS, layers=[-1], pooling="mean")
    first = encoder.encode(TEXTS, layers=[-1], pooling="first")
    last = encoder.encode(TEXTS, layers=[-1], pooling="last")
    assert mean.shape == (len(TEXTS), 32) and mean.dtype == np.float32
    for i, (pieces, vec) in enumerate(tokens):
        if not pieces:                                   # the empty text: zeros / <cls>
            np.testing.assert_array_equal(mean[i], 0.0)
            np.testing.assert_array_equal(first[i], last[i])
            continue
        np.testing.assert_allclose(mean[i], vec.mean(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(first[i], vec[0])
    # last = the <cls> state: the packed input's final position
    batch, _ = encoder.pack([TEXTS[0]])
    cls = encoder.model(batch, training=False)["hidden"].numpy()[0, -1]
    np.testing.assert_allclose(last[0], cls, rtol=1e-5, atol=1e-5)


def test_a_text_gives_the_same_vectors_alone_and_in_any_batch(encoder):
    """Left padding is masked out as keys and attention is relative: the same vectors
    alone, beside longer texts (more padding, another bucket length) and in another order."""
    alone = [encoder.encode([t], layers=[-1, -3], pooling="none")[0][1] for t in TEXTS]
    together = encoder.encode(TEXTS, layers=[-1, -3], pooling="none", batch_size=5)
    shuffled = encoder.encode(TEXTS[::-1], layers=[-1, -3], pooling="none", batch_size=2)[::-1]
    for a, (_, b), (_, c) in zip(alone, together, shuffled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
    # the long text really was padded differently: alone it needs less room than with others
    short_alone, _ = encoder.pack([TEXTS[1]])
    short_in_batch, _ = encoder.pack(TEXTS[1:3])
    assert short_alone["input_ids"].shape[1] < short_in_batch["input_ids"].shape[1]


def test_command_writes_jsonl_and_npz(checkpoint, tmp_path, capsys):
    command = importlib.import_module("xlnet_tf.extract_features")
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS[:3]) + "\n", encoding="utf-8")
    base = [f"--init_checkpoint={checkpoint / 'xlnet_model.ckpt'}", f"--spiece_model={FIXTURE}",
            f"--input_file={texts}", "--max_seq_length=64"]
    out = tmp_path / "out.jsonl"
    assert cli.run(command.define_flags, command.main, [*base, f"--output_file={out}",
                                                        "--pooling=mean"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == TEXTS[:3] and len(rows[0]["embedding"]) == 32
    enc = command.load_encoder(str(checkpoint / "xlnet_model.ckpt"), str(FIXTURE),
                               max_seq_length=64)
    want = enc.encode(TEXTS[:3], pooling="mean")
    np.testing.assert_allclose([r["embedding"] for r in rows], want, atol=2e-6)
    npz = tmp_path / "out.npz"
    assert cli.run(command.define_flags, command.main, [*base, f"--output_file={npz}",
                                                        "--pooling=none", "--layers=-1,-2"]) == 0
    z = np.load(npz, allow_pickle=False)
    tokens = enc.encode(TEXTS[:3], layers=[-1, -2], pooling="none")
    assert list(z["offsets"]) == list(np.cumsum([0] + [len(p) for p, _ in tokens]))
    np.testing.assert_allclose(z["vectors"], np.concatenate([v for _, v in tokens]), atol=1e-5)
    assert list(z["pieces"]) == [p for ps, _ in tokens for p in ps]
    capsys.readouterr()
    # mistakes: one line, exit 2, naming the flag
    for argv, needle in [([*base, f"--output_file={tmp_path / 'x.csv'}"], "name it .jsonl or .npz"),
                         ([*base, f"--output_file={out}", "--layers=-9"], "--layers [-9] out of range"),
                         ([*base, f"--output_file={out}", "--layers=x"], "--layers=x")]:
        assert cli.run(command.define_flags, command.main, argv) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, err
