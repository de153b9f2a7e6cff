"""run_pretrain.py and python -m xlnet_tf.pretraining.records refuse bad settings before the
first write, and stop cleanly: every flag check (batch size, learning rate, memory,
sequence length, --num_predict, --vocab_size, the memory estimate) and the vocabulary the
corpus cannot give end with exit 2 naming the flag, a pre-existing --model_dir unchanged;
a second run in one --model_dir is refused naming the first; Ctrl-C during SentencePiece
training, record building and training prints one line saying where and exits 130."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from refusal_utils import another_run_holding, assert_refused, run_script, snapshot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--n_layer=2", "--d_model=32", "--n_head=2", "--d_head=16", "--d_inner=64",
        "--seq_len=32", "--reuse_len=16", "--perm_size=16", "--num_predict=5", "--mem_len=16",
        "--train_batch_size=8", "--vocab_size=500", "--iterations=10", "--save_steps=20",
        "--warmup_steps=5"]


def corpus(path, lines, seed=0):
    """Random words, one sentence per line (enough text to keep a step busy)."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(20000)]
    with open(path, "w") as f:
        for i in range(lines):
            f.write(" ".join(rng.choice(words) for _ in range(12)) + ".\n")
            if i % 50 == 49:
                f.write("\n")
    return path


def user_folder(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("the user's file\n")
    return out, snapshot(out)


@pytest.mark.parametrize("flags,needles", [
    (["--train_batch_size=0"], ["--train_batch_size must be > 0"]),
    (["--train_batch_size=-8"], ["--train_batch_size must be > 0"]),
    (["--learning_rate=0"], ["--learning_rate must be > 0"]),
    (["--mem_len=-1"], ["--mem_len must be >= 0"]),
    (["--seq_len=0"], ["--seq_len must be > 0"]),
    (["--num_predict=100"], ["--num_predict=100 is larger than possible", "at most 32"]),
    (["--vocab_size=10"], ["--vocab_size=10", "use a larger --vocab_size"]),
    (["--spiece_model=nowhere/spiece.model"], ["--spiece_model", "does not exist"]),
    (["--train_steps=0"], ["--train_steps must be > 0"]),
    # absurd sizes: refused with the memory the run would need, before any record
    (["--seq_len=100000", "--reuse_len=50000", "--perm_size=50000"],
     ["--train_batch_size=8 --seq_len=100000", "GiB of memory", "this machine has"]),
])
def test_flag_mistakes_are_refused_before_any_write(tmp_path, flags, needles):
    out, before = user_folder(tmp_path)
    data = tmp_path / "data"
    code, _, err = run_script("run_pretrain", [*TINY, f"--model_dir={out}",
                                               f"--data_dir={data}", *flags])
    assert_refused(code, err, *needles)
    assert snapshot(out) == before and not data.exists()
    code, _, err = run_script("run_pretrain", [*TINY, f"--model_dir={tmp_path / 'new'}",
                                               *flags])
    assert code == 2 and not (tmp_path / "new").exists()


def test_vocab_the_corpus_cannot_give_names_the_vocab_size_to_use(tmp_path):
    text = corpus(tmp_path / "small.txt", 400)
    out, before = user_folder(tmp_path)
    for model_dir in (out, tmp_path / "new"):
        code, _, err = run_script("run_pretrain", [*TINY, f"--model_dir={model_dir}",
                                                   f"--input_text={text}", "--vocab_size=30000"])
        assert_refused(code, err, "--vocab_size 30000 is too large", "Lower --vocab_size (to <=")
    assert snapshot(out) == before                 # no data/, no lock file left
    assert not (tmp_path / "new").exists()


def spawn(args):
    """A script in a new process group (Ctrl-C in a terminal reaches the whole group)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(proc, needle, timeout=120):
    """Lines of ``proc`` up to the first one holding ``needle``."""
    seen, t0 = [], time.time()
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return seen
        assert time.time() - t0 < timeout, "".join(seen)
    raise AssertionError(f"{needle!r} never came:\n" + "".join(seen))


def interrupt(proc, timeout=20):
    """Ctrl-C to the process group; returns (exit code, rest of the output)."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("Ctrl-C did not stop the run in time")
    return proc.returncode, rest


def assert_one_interrupt_line(code, rest, *needles):
    assert code == 130, rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
    lines = [line for line in rest.splitlines() if "interrupted" in line]
    assert len(lines) == 1, rest
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_ctrl_c_during_sentencepiece_training_stops_at_once(tmp_path):
    text = corpus(tmp_path / "corpus.txt", 60000)
    proc = spawn(["run_pretrain.py", *TINY, f"--model_dir={tmp_path / 'm'}",
                  f"--input_text={text}", "--vocab_size=8000"])
    wait_for(proc, "training a SentencePiece model")
    time.sleep(1.0)
    t0 = time.time()
    code, rest = interrupt(proc)
    assert time.time() - t0 < 10, "waited for SentencePiece to finish"
    assert_one_interrupt_line(code, rest, "while training the SentencePiece model",
                              "rerun the same command")
    assert not os.path.exists(tmp_path / "m" / "data" / "spiece.model")


def test_ctrl_c_during_record_building_leaves_no_records(tmp_path):
    from xlnet_tf.tokenization.train_spm import train_sentencepiece
    text = corpus(tmp_path / "corpus.txt", 40000)
    spm = train_sentencepiece(str(corpus(tmp_path / "small.txt", 2000)), tmp_path / "sp",
                              vocab_size=500, num_threads=1)
    save = tmp_path / "records"
    proc = spawn(["-m", "xlnet_tf.pretraining.records", f"--input_glob={text}",
                  f"--save_dir={save}", f"--spiece_model={spm}", "--num_workers=2",
                  "--seq_len=32", "--reuse_len=16", "--num_predict=5", "--bsz_per_host=8",
                  "--num_core_per_host=1"])
    wait_for(proc, "task 0/1 pass 0")
    code, rest = interrupt(proc)
    assert_one_interrupt_line(code, rest, "while building the records of task 0 pass 0",
                              "rerun the same command")
    assert not os.path.exists(save) or os.listdir(save) == []


def test_second_run_in_one_model_dir_is_refused_naming_the_first(tmp_path):
    out, _ = user_folder(tmp_path)
    with another_run_holding(out, "--model_dir") as pid:
        inside = snapshot(out)
        code, _, err = run_script("run_pretrain", [*TINY, f"--model_dir={out}"])
        assert_refused(code, err, f"--model_dir={out} is in use by another run", f"pid {pid}")
        assert snapshot(out) == inside          # nothing written, the holder's lock intact


def test_ctrl_c_during_training_says_where_it_stopped(tmp_path):
    text = corpus(tmp_path / "corpus.txt", 500)
    model_dir = tmp_path / "m"
    proc = spawn(["run_pretrain.py", *TINY, f"--model_dir={model_dir}", f"--input_text={text}",
                  "--train_steps=100000", "--iterations=5", "--save_steps=5",
                  "--warmup_steps=0"])
    try:
        wait_for(proc, "step 10/100000", timeout=300)     # the checkpoint of step 5 is saved
        code, rest = interrupt(proc, timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert_one_interrupt_line(code, rest, "while training at step", "the checkpoint of step",
                              "rerun the same command to resume")
    assert (model_dir / "ckpt-5.index").exists() and (model_dir / "task.json").exists()
    assert not [p for p in os.listdir(model_dir) if p.startswith(".xlnet_tf.lock")]
