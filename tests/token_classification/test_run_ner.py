"""run_ner.py end to end on CoNLL-2003 with a tiny model trained from scratch: it overfits a
few hundred training sentences (entity F1 and token accuracy far above the all-O
baseline), its files (eval_results.json, predictions.txt, TensorBoard) say the same as a
rescoring of predictions.txt, a 5,000-word sentence is tagged through its windows, the
SavedModel answers in a fresh process as --do_predict did, and bad input is refused with
one line naming the file and nothing in the output folder touched."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from refusal_utils import REPO, assert_refused, run_script, snapshot
from xlnet_tf.token_classification.metrics import conll_scores
from xlnet_tf.token_classification.readers import read_conll

FIXTURE_SPM = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model")
TINY = ["--n_layer=2", "--d_model=32", "--n_head=2", "--d_head=16", "--d_inner=64",
        "--max_seq_length=64", "--doc_stride=32", "--train_batch_size=16",
        "--eval_batch_size=32", "--iterations=50", f"--spiece_model={FIXTURE_SPM}"]
TRAIN = ["--learning_rate=3e-3", "--warmup_steps=20", "--train_steps=300", "--dropout=0",
         "--dropatt=0"]


def first_sentences(src, dst, n):
    """The first ``n`` sentences of ``src`` (with their -DOCSTART- lines) into ``dst``."""
    out, count = [], 0
    for line in src.read_text(encoding="utf-8").split("\n"):
        out.append(line)
        if not line.strip() and out[-2:-1] and out[-2].strip() and \
                not out[-2].startswith("-DOCSTART-"):
            count += 1
            if count == n:
                break
    dst.write_text("\n".join(out) + "\n", encoding="utf-8")
    return str(dst)


def run(args):
    return run_script("run_ner", args)


def read_predictions(path):
    """[(words, gold, pred)] per sentence of a predictions.txt."""
    sentences, cur = [], ([], [], [])
    for line in pathlib.Path(path).read_text(encoding="utf-8").split("\n"):
        if not line:
            if cur[0]:
                sentences.append(cur)
            cur = ([], [], [])
            continue
        w, g, p = line.split(" ")
        for part, v in zip(cur, (w, g, p)):
            part.append(v)
    return sentences


@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conll")
    conll = shared_data / "ner" / "conll2003"
    first_sentences(conll / "eng.train", folder / "train.txt", 300)
    first_sentences(conll / "eng.testb", folder / "test.txt", 60)
    return folder


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ner"
    code, stdout, err = run([f"--data_dir={data}", f"--output_dir={out}", "--do_train",
                             "--do_eval", "--eval_split=train", "--do_predict", *TINY, *TRAIN])
    assert code == 0, err
    return out, stdout


def test_overfits_a_few_hundred_sentences(trained, data):
    out, stdout = trained
    results = json.loads((out / "eval_results.json").read_text())
    assert "--tag_scheme not given" in stdout and results["tag_scheme"] == "iob1"
    gold = [s.tags for s in read_conll(str(data / "train.txt"))]
    all_o = sum(t == "O" for s in gold for t in s) / sum(map(len, gold))
    assert results["num_words"] == sum(map(len, gold))
    # the all-O baseline has F1 0 and accuracy all_o (about 0.82 here)
    assert results["f1"] > 0.5, results
    assert results["accuracy"] > all_o + 0.08, (results["accuracy"], all_o)
    assert set(results["per_type"]) == {"LOC", "MISC", "ORG", "PER"}
    assert os.listdir(out / "eval") and os.listdir(out / "train")      # TensorBoard
    assert (out / "xlnet_model.ckpt.index").exists()


def test_predictions_file_rescored(trained, data):
    out, _ = trained
    rows = read_predictions(out / "predictions.txt")
    test = read_conll(str(data / "test.txt"))
    assert [r[0] for r in rows] == [s.words for s in test]
    assert [r[1] for r in rows] == [s.tags for s in test]
    saved = json.loads((out / "predict_results.json").read_text())
    again = conll_scores([r[1] for r in rows], [r[2] for r in rows])
    for k in ("f1", "precision", "recall", "accuracy", "num_correct_entities"):
        assert saved[k] == again[k]


def test_5000_word_sentence_through_windows(trained, data, tmp_path):
    out, _ = trained
    words = [line for line in (data / "train.txt").read_text().split("\n")
             if line.strip() and not line.startswith("-DOCSTART-")][:10]   # word lines
    long = tmp_path / "long.txt"
    long.write_text("".join(words[i % len(words)] + "\n" for i in range(5000)) + "\n")
    code, stdout, err = run([f"--output_dir={out}", "--do_predict", f"--test_file={long}",
                             *TINY])
    assert code == 0, err
    assert "1 sentences longer than 62 pieces split" in stdout
    rows = read_predictions(out / "predictions.txt")
    assert len(rows) == 1 and len(rows[0][0]) == 5000


def test_export_answers_like_do_predict_in_a_fresh_process(trained, data, tmp_path):
    out, _ = trained
    code, _, err = run([f"--data_dir={data}", f"--output_dir={out}", "--do_predict", *TINY])
    assert code == 0, err
    rows = read_predictions(out / "predictions.txt")
    export = tmp_path / "export"
    code, stdout, err = run([f"--output_dir={out}", f"--export_dir={export}"])
    assert code == 0, err
    from xlnet_tf.tokenization.tokenizer import Tokenizer
    from xlnet_tf.token_classification.alignment import align_words
    tok = Tokenizer(FIXTURE_SPM)
    # the export reads every window: sentences longer than one are compared too
    assert sum(len(align_words(tok, r[0]).ids) > 62 for r in rows) >= 3
    request = tmp_path / "request.json"
    request.write_text(json.dumps([" ".join(r[0]) for r in rows] + [""]))
    code = ("import json, sys, tensorflow as tf\n"
            "from xlnet_tf.serving import load_saved_model\n"
            "m = load_saved_model(sys.argv[1])\n"
            "texts = json.load(open(sys.argv[2]))\n"
            "o = m.signatures['serving_default'](text=tf.constant(texts))\n"
            "n = o['num_words'].numpy().tolist()\n"
            "tags = [[t.decode() for t in row[:k]] for row, k in zip(o['tags'].numpy(), n)]\n"
            "print(json.dumps({'tags': tags, 'n': n}))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code, str(export / "1"), str(request)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["n"][-1] == 0 and answer["tags"][-1] == []            # an empty sentence
    assert answer["tags"][:-1] == [r[2] for r in rows]


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("args,needle", [
    (["--data_dir=x"], "nothing to do"),
    (["--do_train"], "--data_dir (or --train_file"),
    (["--data_dir=x", "--do_train", "--doc_stride=200"], "--doc_stride=200 must be in [1, --max_seq_length - 2 = 126]"),
    (["--data_dir=x", "--do_train", "--label_column=0"], "--label_column=0 is the word column"),
    (["--data_dir=x", "--do_train", "--max_seq_length=2"], "too small"),
    (["--data_dir=x", "--do_train", "--tag_scheme=bio"], "--tag_scheme"),
    (["--data_dir=x", "--do_eval", "--max_seq_length=100000"],
     "--max_seq_length=100000 would need about"),
])
def test_flag_errors(tmp_path, args, needle):
    code, _, err = run([f"--output_dir={tmp_path / 'out'}", f"--spiece_model={FIXTURE_SPM}",
                        *args])
    assert_refused(code, err, needle)
    assert not (tmp_path / "out").exists()


CONLL = "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\n"


@pytest.mark.parametrize("name,text,extra,needles", [
    ("columns", CONLL.replace("rejects VBZ I-VP O", "rejects O"), [], (":4: 2 column(s) where "
                                                                         "line 1 has 4",)),
    ("tag", CONLL.replace("I-PER", "S-PER"), ["--tag_scheme=iob2"],
     (":6: tag 'S-PER' is not a iob2 tag",)),
    ("empty", "-DOCSTART- -X- O O\n\n\n", [], (": no sentences",)),
])
def test_bad_input_refused_and_nothing_touched(tmp_path, name, text, extra, needles):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, _, err = run([f"--data_dir={data}", f"--output_dir={out}", "--do_train", *TINY,
                        *extra])
    line = assert_refused(code, err, str(data / "train.txt"), *needles)
    assert line
    assert snapshot(out) == before


def test_windows_line_endings_train(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_bytes((CONLL * 4).replace("\n", "\r\n").encode())
    code, stdout, err = run([f"--data_dir={data}", f"--output_dir={tmp_path / 'out'}",
                             "--do_train", "--do_eval", "--eval_split=train",
                             *TINY, "--train_steps=2", "--iterations=1"])
    assert code == 0, err
    assert "train data" in stdout and "8 sentences, 12 words" in stdout
