"""run_race.py end to end on real RACE questions: a small model overfits 223 training
questions (accuracy asserted well above the 25 % of chance and recomputed from the
prediction file), the original-named checkpoint it writes evaluates to the same logits in a
new folder, the exported SavedModel answers raw text like --do_predict in a fresh process
(batch 7 and batch 1, both signatures) and through the REST emulation, and bad input is
refused with one line naming the file and question, leaving the output folder untouched.

The script's ``main`` runs in this process (``cli.run``) except for the fresh-process
check of the export."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from refusal_utils import assert_refused, run_script, snapshot
from xlnet_tf.multiple_choice.readers import get_reader

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_SPM = str(REPO / "tests" / "fixtures" / "spiece_test.model")
T, Q = 48, 20
TINY = ["--n_layer=1", "--d_model=32", "--n_head=2", "--d_head=16", "--d_inner=64",
        f"--max_seq_length={T}", f"--max_qa_length={Q}", "--eval_batch_size=64",
        f"--spiece_model={FIXTURE_SPM}"]


def run_race(args):
    return run_script("run_race", args)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def race_data(shared_data, tmp_path_factory):
    """50 RACE-M training passages (223 questions) and 3 dev passages (11 questions)."""
    d = tmp_path_factory.mktemp("race_small")
    for split, n in (("train", 50), ("dev", 3)):
        with open(shared_data / "race" / f"{split}_middle.jsonl") as f:
            (d / f"{split}_middle.jsonl").write_text("".join(next(f) for _ in range(n)))
    return d


@pytest.fixture(scope="module")
def overfit(race_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("race_run")
    out, exp = root / "out", root / "exported"
    code, stdout, err = run_race([
        f"--data_dir={race_data}", "--middle_only", f"--output_dir={out}", "--do_train",
        "--do_eval", "--eval_split=train", "--do_predict", "--predict_split=dev",
        "--train_steps=120", "--iterations=40", "--train_batch_size=16",
        "--learning_rate=5e-3", "--dropout=0", "--dropatt=0", f"--export_dir={exp}", *TINY])
    assert code == 0, err
    return {"out": out, "stdout": stdout, "version_dir": exp / "1"}


def test_small_model_overfits_the_training_questions(overfit):
    out = overfit["out"]
    with open(out / "eval_results.json") as f:
        results = json.load(f)
    assert results["num_examples"] == 223 and results["num_middle"] == 223
    assert results["step"] == 120
    assert results["accuracy"] > 0.6, results             # chance is 0.25
    rows = read_jsonl(out / "eval_predictions.jsonl")
    assert len(rows) == 223
    acc = np.mean([r["prediction"] == r["answer"] for r in rows])
    assert results["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert results["accuracy_middle"] == results["accuracy"]
    logits = np.array([r["logits"] for r in rows], np.float64)
    gold = np.array(["ABCD".index(r["answer"]) for r in rows])
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    assert results["loss"] == pytest.approx(-logp[np.arange(223), gold].mean(), rel=1e-5)
    assert "train records (train):" in overfit["stdout"]
    assert "223 questions (middle 223) x 4 options" in overfit["stdout"]


def test_prediction_file_and_original_names(overfit, race_data):
    import tensorflow as tf
    out = overfit["out"]
    rows = read_jsonl(out / "predictions.jsonl")
    dev = get_reader("race", middle_only=True).get_examples(str(race_data), "dev")
    assert [r["id"] for r in rows] == [ex.qid for ex in dev] and len(rows) == 11
    assert [r["answer"] for r in rows] == ["ABCD"[ex.label] for ex in dev]
    for r in rows:
        assert set(r) == {"id", "level", "logits", "probabilities", "prediction", "answer"}
        assert len(r["logits"]) == 4 and r["prediction"] == "ABCD"[int(np.argmax(r["logits"]))]
        np.testing.assert_allclose(sum(r["probabilities"]), 1.0, rtol=1e-6)
    names = dict(tf.train.list_variables(str(out / "xlnet_model.ckpt")))
    assert names["logits/dense/kernel"] == [32, 1] and "model/sequnece_summary/summary/bias" in names
    for name in ("task.json", "multiple_choice_config.json", "xlnet_config.json",
                 "spiece.model", "checkpoint"):
        assert (out / name).exists(), name


def test_init_checkpoint_of_the_original_names_gives_the_same_logits(overfit, race_data,
                                                                     tmp_path):
    new = tmp_path / "from_ckpt"
    code, _, err = run_race([
        f"--data_dir={race_data}", "--middle_only", f"--output_dir={new}", "--do_predict",
        "--predict_split=dev", f"--init_checkpoint={overfit['out'] / 'xlnet_model.ckpt'}",
        *TINY])
    assert code == 0, err
    want = [r["logits"] for r in read_jsonl(overfit["out"] / "predictions.jsonl")]
    got = [r["logits"] for r in read_jsonl(new / "predictions.jsonl")]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


FRESH_PROCESS = r"""
import json, sys
import tensorflow_text  # registers the tensorflow-text ops before the graph is loaded
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
fn = loaded.signatures["serving_default"]
qs = json.loads(sys.argv[2])
def call(batch):
    return fn(article=tf.constant([q["context"] for q in batch]),
              question=tf.constant([q["question"] for q in batch]),
              options=tf.constant([q["options"] for q in batch]))
batch = call(qs)
singles = [call([q]) for q in qs]
ids = json.loads(sys.argv[3])
by_ids = loaded.signatures["predict_ids"](
    input_ids=tf.constant(ids["input_ids"], tf.int32), seg_ids=tf.constant(ids["seg_ids"], tf.int32),
    input_mask=tf.constant(ids["input_mask"], tf.float32))
print(json.dumps({
    "batch_probs": batch["probabilities"].numpy().tolist(),
    "batch_answers": [x.decode() for x in batch["answer"].numpy()],
    "batch_index": batch["answer_index"].numpy().tolist(),
    "single_probs": [s["probabilities"].numpy()[0].tolist() for s in singles],
    "single_answers": [s["answer"].numpy()[0].decode() for s in singles],
    "ids_probs": by_ids["probabilities"].numpy().tolist(),
}))
"""


def _dev_questions(race_data, n=7):
    dev = get_reader("race", middle_only=True).get_examples(str(race_data), "dev")[:n]
    return dev, [{"context": ex.context, "question": ex.question, "options": list(ex.options)}
                 for ex in dev]


def test_export_answers_like_do_predict_in_a_fresh_process(overfit, race_data):
    from xlnet_tf.multiple_choice.features import convert_example
    from xlnet_tf.tokenization.tokenizer import Tokenizer
    dev, questions = _dev_questions(race_data)
    tok = Tokenizer(FIXTURE_SPM)
    feats = [convert_example(ex, tok, T, Q) for ex in dev]
    ids = {k: np.stack([getattr(f, k) for f in feats]).tolist()
           for k in ("input_ids", "seg_ids", "input_mask")}
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(overfit["version_dir"]),
                           json.dumps(questions), json.dumps(ids)], capture_output=True,
                          text=True, cwd=str(REPO), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = read_jsonl(overfit["out"] / "predictions.jsonl")[:7]
    want = np.array([r["probabilities"] for r in rows])
    assert np.ptp(want) > 0.05                      # the answers differ clearly
    np.testing.assert_allclose(fresh["batch_probs"], want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fresh["single_probs"], want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fresh["ids_probs"], want, atol=1e-5, rtol=0)
    letters = [r["prediction"] for r in rows]
    assert fresh["batch_answers"] == letters and fresh["single_answers"] == letters
    assert fresh["batch_index"] == ["ABCD".index(x) for x in letters]


def test_rest_emulation(overfit, race_data):
    from xlnet_tf.serving import rest_predict
    _, questions = _dev_questions(race_data, 2)
    rows = read_jsonl(overfit["out"] / "predictions.jsonl")[:2]
    body = {"instances": [{"article": q["context"], "question": q["question"],
                           "options": q["options"]} for q in questions]}
    answer = rest_predict(str(overfit["version_dir"]), json.dumps(body))
    assert "error" not in answer, answer
    got = answer["predictions"]
    assert [p["answer"] for p in got] == [r["prediction"] for r in rows]
    np.testing.assert_allclose([p["probabilities"] for p in got],
                               [r["probabilities"] for r in rows], atol=1e-5)


def test_export_only_from_the_finished_folder(overfit, tmp_path):
    code, stdout, err = run_race([f"--output_dir={overfit['out']}",
                                  f"--export_dir={tmp_path / 'again'}"])
    assert code == 0, err
    assert (tmp_path / "again" / "1" / "saved_model.pb").exists()
    assert "SavedModel written to" in stdout


def test_long_article_is_cut_from_its_end(race_data, tmp_path):
    """A 100,000-character article: the passage keeps its first ids, the QA part its last
    max_qa_length ids; Python and in-graph packing agree; a run trains on it."""
    import tensorflow as tf
    from xlnet_tf.multiple_choice.features import convert_example, pack_choices_tf, qa_text
    from xlnet_tf.multiple_choice.readers import MCExample
    from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer
    from xlnet_tf.tokenization.tokenizer import Tokenizer
    article = ("The quick brown fox jumps over the lazy dog near the river bank. " * 1600)
    article = article[:100_000]
    ex = MCExample("long-0", article, "What did the fox do _ ?", ("jump", "sleep"), 0)
    tok = Tokenizer(FIXTURE_SPM)
    f = convert_example(ex, tok, T, Q)
    a_ids = tok.encode_ids(article)
    assert f.truncated and f.input_mask.sum() == 0
    for c, option in enumerate(ex.options):
        qa = tok.encode_ids(qa_text(ex.question, option))[-Q:]
        assert f.input_ids[c].tolist() == a_ids[:T - 3 - len(qa)] + [4] + qa + [4, 3]
    layer = XLNetTokenizerLayer(FIXTURE_SPM)
    ids, _, _ = pack_choices_tf(layer(tf.constant([article] * 2)), layer(tf.constant(
        [qa_text(ex.question, o) for o in ex.options])), T, Q)
    np.testing.assert_array_equal(ids.numpy(), f.input_ids)

    data = tmp_path / "data"
    data.mkdir()
    passage = {"article": article, "questions": ["What did the fox do _ ?"],
               "options": [["jump", "sleep", "swim", "run"]], "answers": ["A"], "id": "m1"}
    (data / "train_middle.jsonl").write_text(json.dumps(passage) + "\n")
    code, stdout, err = run_race([f"--data_dir={data}", "--middle_only",
                                  f"--output_dir={tmp_path / 'out'}", "--do_train",
                                  "--train_steps=1", "--iterations=1", "--train_batch_size=1",
                                  *TINY])
    assert code == 0, err
    assert "1 questions (middle 1) x 4 options, 1 truncated to 48 tokens" in stdout


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args,needle", [
    (["--data_dir=x"], "nothing to do"),
    (["--data_dir=x", "--do_eval", "--max_qa_length=46"],
     "--max_qa_length=46 must be in [1, --max_seq_length - 3 = 45]"),
    (["--data_dir=x", "--do_eval", "--task=dream", "--high_only"],
     "--high_only/--middle_only only apply to --task=race"),
    (["--data_dir=x", "--do_eval", "--options_column=a"],
     "--options_column only apply to --task=generic"),
    (["--data_dir=x", "--do_eval", "--task=swag"], "--task='swag' is not known"),
    (["--do_eval"], "--data_dir is required"),
    (["--data_dir=x", "--do_eval", "--max_seq_length=100000"],
     "--max_seq_length=100000 would need about"),
])
def test_flag_errors(tmp_path, args, needle):
    code, _, err = run_race([f"--output_dir={tmp_path / 'out'}", *TINY, *args])
    assert_refused(code, err, needle)
    assert not (tmp_path / "out").exists()


GOOD = {"article": "A short text about a cat.", "questions": ["Who is it?", "What _ ?"],
        "options": [["a cat", "a dog", "a bird", "a fish"]] * 2, "answers": ["A", "C"],
        "id": "middle9.txt"}


@pytest.mark.parametrize("change,needles", [
    ({"options": [["a", "b", "c", "d"], []]}, ["question 2: the question has no options"]),
    ({"answers": ["A", "F"]}, ["question 2: answer 'F' names option 6", "(A-D)"]),
    ({"options": [["a", "b", "c", "d"], ["a", "b", "c"]]},
     ["question 'middle9.txt-1' has 3 options but question 'middle9.txt-0' has 4"]),
    ({"article": ""}, ["question 1: the passage is empty"]),
])
def test_bad_data_is_refused_and_nothing_is_written(tmp_path, change, needles):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_middle.jsonl").write_text(json.dumps({**GOOD, **change}) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, _, err = run_race([f"--data_dir={data}", "--middle_only", f"--output_dir={out}",
                             "--do_train", "--train_steps=1", "--train_batch_size=1", *TINY])
    assert_refused(code, err, "train_middle.jsonl", "middle9.txt", *needles)
    assert snapshot(out) == before


def test_output_dir_of_another_model_is_refused_untouched(overfit, race_data):
    before = snapshot(overfit["out"])
    code, _, err = run_race([f"--data_dir={race_data}", "--middle_only",
                             f"--output_dir={overfit['out']}", "--do_train",
                             "--train_steps=1", *TINY[:-3], "--max_seq_length=40",
                             "--max_qa_length=20", f"--spiece_model={FIXTURE_SPM}"])
    assert_refused(code, err, "--output_dir", "max_seq_length")
    assert snapshot(overfit["out"]) == before
