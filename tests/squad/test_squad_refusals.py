"""run_squad.py refuses an absurd --max_seq_length with the memory it would need, before
any feature is built or the --output_dir touched, and a second run in one --output_dir."""
import json
import pathlib

from refusal_utils import another_run_holding, assert_refused, run_script, snapshot

REPO = pathlib.Path(__file__).resolve().parents[2]
SPM = str(REPO / "tests" / "fixtures" / "spiece_test.model")
TINY = ["--n_layer=1", "--d_model=16", "--n_head=2", "--d_head=8", "--d_inner=32",
        "--doc_stride=64", "--max_query_length=32", "--train_batch_size=4",
        "--iterations=2", "--train_steps=2", "--warmup_steps=0", f"--spiece_model={SPM}"]


def squad_file(tmp_path):
    path = tmp_path / "train.json"
    context = "The Normans gave their name to Normandy, a region in France."
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "Normans", "paragraphs": [
        {"context": context, "qas": [{"id": "q1", "question": "What region?", "answers": [
            {"text": "Normandy", "answer_start": context.index("Normandy")}]}]}]}]}))
    return path


def user_folder(tmp_path):
    """An --output_dir holding a file of the user's, and its snapshot."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's file\n")
    return out, snapshot(out)


def test_absurd_max_seq_length_is_refused_with_the_estimate(tmp_path):
    out, before = user_folder(tmp_path)
    code, _, err = run_script("run_squad", [
        *TINY, f"--train_file={squad_file(tmp_path)}", f"--output_dir={out}", "--do_train",
        "--max_seq_length=100000", f"--cache_dir={tmp_path / 'cache'}"])
    assert_refused(code, err, "--train_batch_size=4 --max_seq_length=100000", "GiB of memory")
    assert snapshot(out) == before and not (tmp_path / "cache").exists()


def test_absurd_prediction_batch_is_refused_without_training_too(tmp_path):
    out, before = user_folder(tmp_path)
    code, _, err = run_script("run_squad", [
        *TINY, f"--predict_file={squad_file(tmp_path)}", f"--output_dir={out}", "--do_predict",
        "--max_seq_length=100000", "--predict_batch_size=8", f"--cache_dir={tmp_path / 'cache'}"])
    assert_refused(code, err, "--predict_batch_size=8 --max_seq_length=100000",
                   "GiB of memory for one evaluation batch")
    assert snapshot(out) == before and not (tmp_path / "cache").exists()


def test_second_run_in_one_output_dir_is_refused(tmp_path):
    out = tmp_path / "out"
    with another_run_holding(out, "--output_dir") as pid:
        inside = snapshot(out)
        code, _, err = run_script("run_squad", [
            *TINY, f"--train_file={squad_file(tmp_path)}", f"--output_dir={out}",
            "--do_train", "--max_seq_length=128"])
        assert_refused(code, err, "--output_dir", "in use by another run", f"pid {pid}")
        assert snapshot(out) == inside
