"""run_pretrain.py end to end: the embedded default, resume after SIGKILL, a corrupt latest
checkpoint, MirroredStrategy vs the matching single-device computation, two-process
MultiWorkerMirroredStrategy, and the clear errors before training."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import xlnet_tf
from xlnet_tf.modeling.config import XLNetConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--n_layer=2", "--d_model=32", "--n_head=2", "--d_head=16", "--d_inner=64",
        "--seq_len=32", "--reuse_len=16", "--perm_size=16", "--num_predict=5", "--mem_len=16",
        "--train_batch_size=8", "--vocab_size=500", "--iterations=10", "--save_steps=20",
        "--warmup_steps=5"]


def run(args, timeout=600, check=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "run_pretrain.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"run_pretrain.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                             f"\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Demo corpus, SentencePiece model and records for the TINY flags, built once."""
    d = tmp_path_factory.mktemp("pretrain_data")
    run(TINY + [f"--model_dir={d / 'warmup'}", f"--data_dir={d}", "--train_steps=1",
                "--save_steps=1", "--iterations=1", "--warmup_steps=0"])
    return d


def read_weights(prefix):
    reader = tf.train.load_checkpoint(str(prefix))
    return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(str(prefix))
            if n.startswith("model/")}


def test_default_run_loss_falls_and_exports(tmp_path):
    """The README's first command at a reduced step count (defaults otherwise)."""
    out = tmp_path / "demo"
    proc = run([f"--model_dir={out}", "--train_steps=150"])
    m = re.search(r"loss: first loop ([\d.]+) -> last loop ([\d.]+)", proc.stdout)
    assert m, proc.stdout[-2000:]
    first, last = float(m.group(1)), float(m.group(2))
    assert last < first - 1.0, (first, last)
    assert "steps/s" in proc.stdout and "ETA" in proc.stdout
    # every progress line once on the terminal (stdout + stderr), the first without an ETA
    # inflated by compiling, the later ones with one
    progress = [line for line in (proc.stdout + proc.stderr).splitlines() if "steps/s" in line]
    assert [line.split(" | ")[0].split()[-1] for line in progress] == \
        [f"{s}/150" for s in (50, 100, 150)], progress
    assert "ETA after the next loop" in progress[0] and "ETA 00:" in progress[1]
    assert "run_classifier.py" in proc.stdout  # the fine-tuning command is printed
    assert "--data_dir=PATH/TO/glue/SST-2" in proc.stdout and "shared" not in proc.stdout
    # the published-checkpoint trio, loadable like the original files
    config = XLNetConfig.from_json(str(out / "xlnet_config.json"))
    model = xlnet_tf.XLNetLMModel(config)
    result = xlnet_tf.load_original_checkpoint(model, str(out / "xlnet_model.ckpt"))
    assert not result.missing
    assert (out / "spiece.model").exists()
    assert any(p.startswith("events.out.tfevents") for p in os.listdir(out / "train"))


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, data_dir):
    common = TINY + [f"--data_dir={data_dir}", "--train_steps=60"]
    ref = tmp_path / "uninterrupted"
    run(common + [f"--model_dir={ref}"])

    killed = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "run_pretrain.py", *common,
                             f"--model_dir={killed}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    state = killed / "checkpoint"   # the manager's commit point: written after the files
    while not (state.exists() and "ckpt-20" in state.read_text()):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint before exit"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "xlnet_model.ckpt.index").exists()
    restarted = run(common + [f"--model_dir={killed}"])
    assert "resumed from" in restarted.stderr + restarted.stdout
    a, b = read_weights(ref / "xlnet_model.ckpt"), read_weights(killed / "xlnet_model.ckpt")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-6, err_msg=name)


def test_recompute_flag_trains_the_same_weights(tmp_path, data_dir):
    """--recompute (layers recomputed in the backward pass, dropout on) ends where the
    plain run ends."""
    common = TINY + [f"--data_dir={data_dir}", "--train_steps=20", "--dropout=0.1",
                     "--dropatt=0.1"]
    run(common + [f"--model_dir={tmp_path / 'plain'}"])
    run(common + [f"--model_dir={tmp_path / 'recompute'}", "--recompute"])
    a = read_weights(tmp_path / "plain" / "xlnet_model.ckpt")
    b = read_weights(tmp_path / "recompute" / "xlnet_model.ckpt")
    init = read_weights(data_dir / "warmup" / "xlnet_model.ckpt")
    moved = max(np.abs(a[n] - init[n]).max() for n in a if n in init)
    assert moved > 1e-3
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=2e-5, err_msg=name)


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, data_dir):
    common = TINY + [f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'm'}"]
    run(common + ["--train_steps=40"])
    data = tmp_path / "m" / "ckpt-40.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])   # half-written
    proc = run(common + ["--train_steps=60"])
    log = proc.stderr + proc.stdout
    assert "ckpt-40 is unreadable" in log and "resumed from" in log and "ckpt-20" in log
    assert "step 60/60" in proc.stdout


def test_mirrored_two_replicas_match_single_device(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "dist_worker.py"),
                           "mirrored_equivalence", str(tmp_path)], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stderr[-4000:]
    result = json.loads(line[0][7:])
    assert result["replica_diff"] == 0.0          # replicas hold identical weights
    assert result["moved"] > 0.05                 # training really changed the weights
    assert result["vs_single_device"] < 1e-4, result   # = per-replica memory + mean loss


def test_mirrored_run_pretrain_cli(tmp_path, data_dir):
    proc = run(TINY + [f"--data_dir={tmp_path / 'd'}", f"--model_dir={tmp_path / 'm'}",
                       "--train_steps=20", "--strategy=mirrored", "--num_cpus=2"])
    assert "2 replica(s)" in proc.stdout and "per-replica batch 4" in proc.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_mirrored_two_processes(tmp_path, data_dir):
    from xlnet_tf.pretraining.records import create_pretrain_records
    corpus = (data_dir / "python_docs.txt").read_text().split("\n\n")
    files = []
    for i in range(2):
        f = tmp_path / f"part{i}.txt"
        f.write_text("\n\n".join(corpus[i::2]) + "\n")
        files.append(str(f))
    records = tmp_path / "records"
    for task_id in range(2):
        create_pretrain_records(",".join(files), str(records), str(data_dir / "spiece.model"),
                                seq_len=32, reuse_len=16, bi_data=True, num_predict=5,
                                bsz_per_host=4, num_core_per_host=1, num_tasks=2,
                                task_id=task_id)
    ports = [_free_port(), _free_port()]
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": i}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests", "dist_worker.py"), "mwms",
             str(records), str(tmp_path / "model")], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        assert p.returncode == 0 and line, err[-4000:]
        results.append(json.loads(line[0][7:]))
    assert results[0]["replicas"] == 2
    assert results[0]["checksum"] == results[1]["checksum"]   # both workers: same weights
    assert len(results[0]["losses"]) == 2
    assert (tmp_path / "model" / "ckpt-6.index").exists()       # the chief checkpoints


# ---------------------------------------------------------------- clear errors, nothing written
def _snapshot(path):
    return {p: os.path.getmtime(os.path.join(path, p)) for p in sorted(os.listdir(path))}


def test_bad_flags_fail_before_training(tmp_path, data_dir):
    records = data_dir / "records"
    # flags that contradict the records' manifest: named with both values
    proc = run(TINY + [f"--record_dir={records}", "--seq_len=64", "--reuse_len=32",
                       "--perm_size=32", f"--model_dir={tmp_path / 'a'}"], check=False)
    assert proc.returncode == 2 and "seq_len" in proc.stderr and "32" in proc.stderr \
        and "64" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "a").exists()
    # batch not divisible by 2 x replicas with bi_data
    proc = run(TINY + [f"--record_dir={records}", "--train_batch_size=7",
                       f"--model_dir={tmp_path / 'b'}"], check=False)
    assert proc.returncode == 2 and "--train_batch_size=7" in proc.stderr
    # reuse_len > seq_len
    proc = run(TINY + ["--reuse_len=40", f"--model_dir={tmp_path / 'c'}"], check=False)
    assert proc.returncode == 2 and "--reuse_len=40 is larger than --seq_len=32" in proc.stderr


def test_model_dir_of_another_model_and_init_checkpoint_of_another_size(tmp_path, data_dir):
    mdir = tmp_path / "m"
    run(TINY + [f"--data_dir={data_dir}", f"--model_dir={mdir}", "--train_steps=10",
                "--save_steps=10"])
    before = _snapshot(mdir)
    proc = run([a if not a.startswith("--d_model") else "--d_model=48" for a in TINY] +
               [f"--data_dir={data_dir}", f"--model_dir={mdir}", "--train_steps=20"],
               check=False)
    assert proc.returncode == 2 and "holds a checkpoint of a different model" in proc.stderr
    assert "d_model" in proc.stderr and _snapshot(mdir) == before
    # --init_checkpoint made for another size: error before anything is written
    new = tmp_path / "new"
    proc = run([a if not a.startswith("--d_model") else "--d_model=48" for a in TINY] +
               [f"--data_dir={data_dir}", f"--model_dir={new}", "--train_steps=20",
                f"--init_checkpoint={mdir / 'xlnet_model.ckpt'}"], check=False)
    assert proc.returncode == 2 and "another model size" in proc.stderr, proc.stderr[-2000:]
    assert not new.exists() or not [p for p in os.listdir(new) if p.startswith("ckpt")]


def test_tpu_strategy_without_a_tpu_fails_clearly_instead_of_hanging(tmp_path):
    start = time.time()
    proc = run(["--strategy=tpu", "--tpu=grpc://127.0.0.1:1", "--tpu_timeout=5",
                f"--model_dir={tmp_path / 'm'}"], check=False, timeout=120)
    assert proc.returncode == 2 and "--strategy=tpu" in proc.stderr and "Traceback" not in \
        proc.stderr, proc.stderr[-2000:]
    assert time.time() - start < 90
    assert not (tmp_path / "m").exists()


def _backbone(model):
    return {n: v.numpy() for n, v in model.transformer.original_name_map(
        include_mask_emb=False).items()}


def test_dae_objective_trains_and_its_checkpoints_fine_tune_like_plm_ones(tmp_path, data_dir):
    """--objective=dae: the same loop, model and checkpoint layout as the permutation LM;
    its mid-run ckpt-N and its original-named export are both valid --init_checkpoint
    for a fine-tuning model and give it the same backbone weights."""
    from xlnet_tf import finetuning
    from xlnet_tf.classification.model import XLNetClassifier

    mdir = tmp_path / "dae"
    proc = run(TINY + ["--objective=dae", f"--data_dir={data_dir}", f"--model_dir={mdir}",
                       "--train_steps=20", "--save_steps=20"])
    assert "objective dae" in proc.stdout
    m = re.search(r"loss: first loop ([\d.]+) -> last loop ([\d.]+)", proc.stdout)
    assert m and np.isfinite(float(m.group(2))), proc.stdout[-2000:]
    assert json.loads((mdir / "task.json").read_text())["objective"] == "dae"
    # the published-checkpoint trio has exactly the permutation LM's variables
    plm = dict(tf.train.list_variables(str(data_dir / "warmup" / "xlnet_model.ckpt")))
    dae = dict(tf.train.list_variables(str(mdir / "xlnet_model.ckpt")))
    plm.pop("global_step", None), dae.pop("global_step", None)
    assert plm == dae

    config = XLNetConfig.from_json(str(mdir / "xlnet_config.json"))
    loaded = {}
    for source in ("ckpt-20", "xlnet_model.ckpt"):
        model = XLNetClassifier(config, n_class=2, task_name="sst-2")
        result = finetuning.check_init_checkpoint(model, str(mdir / source))
        # the backbone arrives; only the task head keeps its initial values
        assert result.loaded and not [n for n in result.missing
                                      if n.startswith("model/transformer/")], result
        loaded[source] = _backbone(model)
    assert loaded["ckpt-20"].keys() == loaded["xlnet_model.ckpt"].keys()
    for name, value in loaded["ckpt-20"].items():
        np.testing.assert_array_equal(value, loaded["xlnet_model.ckpt"][name], err_msg=name)
    # and they are the trained weights, not an initialisation that happens to agree
    reader = tf.train.load_checkpoint(str(mdir / "xlnet_model.ckpt"))
    name = "model/transformer/layer_0/ff/layer_1/kernel"
    np.testing.assert_array_equal(loaded["ckpt-20"][name], reader.get_tensor(name))
    # a bare backbone (XLNetModel, no task) reads a mid-run ckpt-N too
    from xlnet_tf.modeling.model import XLNetModel
    from xlnet_tf.training import init_from_checkpoint
    bare = XLNetModel(finetuning.finetune_config(config))
    bare({"input_ids": tf.zeros([1, 4], tf.int32)})
    init_from_checkpoint(bare, str(mdir / "ckpt-20"))
    for name, var in bare.original_name_map(include_mask_emb=False).items():
        np.testing.assert_array_equal(var.numpy(), loaded["xlnet_model.ckpt"][name], err_msg=name)

    # the other objective in the same folder is refused before anything changes
    before = _snapshot(mdir)
    proc = run(TINY + ["--objective=plm", f"--data_dir={data_dir}", f"--model_dir={mdir}",
                       "--train_steps=40"], check=False)
    assert proc.returncode == 2 and "objective" in proc.stderr, proc.stderr[-2000:]
    assert _snapshot(mdir) == before
