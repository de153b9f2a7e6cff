"""Tests of xlnet_tf/tokenization/train_spm.py: XLNet's ids, atomic output, clear errors."""
import os
import random
import subprocess
import sys

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from xlnet_tf.tokenization import tokenizer as T
from xlnet_tf.tokenization import train_spm

EXPECTED_FIRST_17 = ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>",
                     ".", "(", ")", '"', "-", "\u2013", "\u00a3", "\u20ac"]


WORDS = ("the café served naïve tourists coffee town people roughly quoted text with dash and "
         "second document starts here more words than before river mountain bright quickly "
         "Thursday London Paris number eleven twenty").split()


def _corpus(tmp_path, name="corpus.txt", lines=None, n_random=300):
    """A small varied corpus: fixed lines (accents, numbers, the README's symbols, <eop>,
    a blank document break) + deterministic pseudo-random sentences."""
    rng = random.Random(0)
    lines = list(lines or [
        "The café served naïve tourists 1,000 cups of coffee.",
        "In 2000, the town had 3,500 people (roughly).",
        "\"Quoted text\" - with a dash \u2013 and \u00a35 or \u20ac7.",
        "Paragraph end<eop>",
        "",
    ])
    for _ in range(n_random):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
        lines.append(" ".join(words).capitalize() + f" {rng.randint(0, 9999)}.")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _leftovers(folder):
    return [p for p in os.listdir(folder) if p.startswith(".train_spm_")]


def test_trains_model_with_xlnet_ids(tmp_path):
    corpus = _corpus(tmp_path)
    out = train_spm.train_sentencepiece(str(corpus), tmp_path / "out" / "sp", vocab_size=120,
                                        num_threads=1)
    assert out == str(tmp_path / "out" / "sp.model")
    assert sorted(os.listdir(tmp_path / "out")) == ["sp.model", "sp.vocab"]
    sp = spm.SentencePieceProcessor(model_file=out)
    assert sp.GetPieceSize() == 120
    assert [sp.IdToPiece(i) for i in range(17)] == EXPECTED_FIRST_17
    assert all(sp.IsControl(i) for i in range(1, 8)) and not sp.IsControl(8)
    vocab_lines = (tmp_path / "out" / "sp.vocab").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in vocab_lines[:17]] == EXPECTED_FIRST_17
    tok = T.Tokenizer(out)                           # passes the special-symbol check
    assert tok.encode_ids("end<eop>")[-1] == T.EOP_ID
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(open(out, "rb").read())
    assert proto.trainer_spec.model_prefix == str(tmp_path / "out" / "sp")
    assert proto.trainer_spec.model_type == proto.trainer_spec.UNIGRAM


def test_raw_vs_preprocessed_training(tmp_path):
    corpus = _corpus(tmp_path)
    raw = train_spm.train_sentencepiece(str(corpus), tmp_path / "raw", vocab_size=120,
                                        num_threads=1)
    pre = train_spm.train_sentencepiece(str(corpus), tmp_path / "pre", vocab_size=120,
                                        num_threads=1, preprocess=True, lower=True)

    def alphabet(path):
        sp = spm.SentencePieceProcessor(model_file=path)
        return {c for i in range(17, sp.GetPieceSize()) for c in sp.IdToPiece(i)}
    assert {"é", "ï"} <= alphabet(raw)                # raw text keeps accents (original)
    assert not {"é", "ï", "T", "I"} & alphabet(pre)   # rules applied: no accents, lower-cased
    with pytest.raises(ValueError, match="lower=True only takes effect with preprocess=True"):
        train_spm.train_sentencepiece(str(corpus), tmp_path / "x", vocab_size=120, lower=True)


def test_glob_and_comma_separated_inputs(tmp_path):
    a = _corpus(tmp_path, "a.txt")
    _corpus(tmp_path, "b.txt", lines=["Other words entirely, zebra quartz."])
    assert train_spm.expand_inputs(f"{tmp_path}/*.txt") == [str(a), str(tmp_path / "b.txt")]
    assert train_spm.expand_inputs([f"{tmp_path}/b.txt, {a}"]) == [str(a), str(tmp_path / "b.txt")]
    with pytest.raises(FileNotFoundError, match=r"nomatch\*\.txt"):
        train_spm.expand_inputs(f"{a},{tmp_path}/nomatch*.txt")
    with pytest.raises(ValueError, match="No input"):
        train_spm.expand_inputs(" , ")


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n")
    with pytest.raises(ValueError, match="corpus is empty"):
        train_spm.train_sentencepiece(str(empty), tmp_path / "sp", vocab_size=100)
    assert not os.path.exists(tmp_path / "sp.model")


def test_vocab_too_large_gives_advice_and_leaves_nothing(tmp_path):
    corpus = _corpus(tmp_path, n_random=0)
    with pytest.raises(ValueError, match=r"--vocab_size 5000 is too large .* at most \d+ pieces"):
        train_spm.train_sentencepiece(str(corpus), tmp_path / "sp", vocab_size=5000,
                                      num_threads=1)
    assert not os.path.exists(tmp_path / "sp.model") and not os.path.exists(tmp_path / "sp.vocab")
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="--vocab_size=.*must exceed the 17 fixed pieces"):
        train_spm.train_sentencepiece(str(corpus), tmp_path / "sp", vocab_size=17)


def test_existing_output_is_not_overwritten(tmp_path):
    corpus = _corpus(tmp_path)
    (tmp_path / "sp.model").write_bytes(b"user file")
    with pytest.raises(FileExistsError, match="--overwrite"):
        train_spm.train_sentencepiece(str(corpus), tmp_path / "sp", vocab_size=100)
    assert (tmp_path / "sp.model").read_bytes() == b"user file"
    train_spm.train_sentencepiece(str(corpus), tmp_path / "sp", vocab_size=100, num_threads=1,
                                  overwrite=True)
    assert T.Tokenizer(tmp_path / "sp.model").vocab_size == 100


def test_invalid_utf8(tmp_path, caplog):
    corpus = _corpus(tmp_path)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("ok line\ncaf\u00e9 au lait\n".encode("latin-1") * 20)
    files = f"{corpus},{latin1}"
    with pytest.raises(ValueError, match=r"latin1\.txt \(first at line 2, 20 line\(s\)\).*iconv"):
        train_spm.train_sentencepiece(files, tmp_path / "sp", vocab_size=100)
    with caplog.at_level("WARNING", logger="xlnet_tf"):
        train_spm.train_sentencepiece(files, tmp_path / "sp", vocab_size=100, num_threads=1,
                                      allow_invalid_utf8=True)
    assert any("U+FFFD" in r.getMessage() and "latin1.txt" in r.getMessage()
               for r in caplog.records)


def test_command_line(tmp_path, repo_root):
    corpus = _corpus(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    ok = subprocess.run(
        [sys.executable, "-m", "xlnet_tf.tokenization.train_spm", f"--input={corpus}",
         f"--model_prefix={tmp_path / 'cli'}", "--vocab_size=100", "--num_threads=1"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert T.Tokenizer(tmp_path / "cli.model").vocab_size == 100
    bad = subprocess.run(
        [sys.executable, "-m", "xlnet_tf.tokenization.train_spm", f"--input={tmp_path}/none*.txt",
         f"--model_prefix={tmp_path / 'cli2'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert bad.returncode == 2
    assert "none*.txt" in bad.stderr and "matched no file" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_command_line_in_process(tmp_path, capsys):
    from xlnet_tf import cli
    corpus = _corpus(tmp_path)
    (tmp_path / "sp.model").write_bytes(b"user file")
    argv = [f"--input={corpus}", f"--model_prefix={tmp_path / 'sp'}", "--vocab_size=100",
            "--num_threads=1"]
    assert cli.run(train_spm.define_flags, train_spm.main, argv, prog="train_spm") == 2
    err = capsys.readouterr().err
    assert err.startswith("train_spm: error: ") and "--overwrite" in err and "Traceback" not in err
    assert (tmp_path / "sp.model").read_bytes() == b"user file"
    assert cli.run(train_spm.define_flags, train_spm.main, argv + ["--overwrite"]) == 0
    assert T.Tokenizer(tmp_path / "sp.model").vocab_size == 100


def test_utf16_input_is_named_before_training(tmp_path, capsys):
    """train_spm on a UTF-16 file: one line naming it (exit 2), no model written."""
    from xlnet_tf import cli
    bad = tmp_path / "corpus.txt"
    bad.write_bytes("One line.\nTwo lines.\n".encode("utf-16"))
    argv = [f"--input={bad}", f"--model_prefix={tmp_path / 'sp'}", "--vocab_size=100"]
    assert cli.run(train_spm.define_flags, train_spm.main, argv, prog="train_spm") == 2
    err = capsys.readouterr().err
    assert "is UTF-16 LE text" in err and str(bad) in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt"]
