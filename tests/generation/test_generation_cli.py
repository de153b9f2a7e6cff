"""python -m xlnet_tf.generation: a run on a checkpoint folder like run_pretrain.py's
(original names + xlnet_config.json + spiece.model), the same tokens as the library, and
one-line errors with exit 2."""
import contextlib
import io
import json
import shutil

import keras
import pytest

import xlnet_tf
from spm_test_utils import FIXTURE_MODEL
from xlnet_tf import cli
from xlnet_tf.generation import __main__ as gen_main
from xlnet_tf.generation import generate, load_lm
from xlnet_tf.modeling.checkpoint import save_original_checkpoint
from xlnet_tf.tokenization import Tokenizer


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(gen_main.define_flags, gen_main.main, argv, prog="xlnet-generate")
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pretrain_out")
    tok = Tokenizer(str(FIXTURE_MODEL))
    cfg = xlnet_tf.XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32,
                               n_token=tok.vocab_size, init_std=0.5)
    keras.utils.set_random_seed(2)
    model = xlnet_tf.XLNetLMModel(cfg)
    save_original_checkpoint(model, str(d / "xlnet_model.ckpt"))
    cfg.to_json(str(d / "xlnet_config.json"))
    shutil.copy(FIXTURE_MODEL, d / "spiece.model")
    return d


def test_generates_what_the_library_does(ckpt_dir, tmp_path):
    model, tok = load_lm(str(ckpt_dir / "xlnet_model.ckpt"))
    want = generate(model, tok, "The cat", 5)
    out_file = tmp_path / "out.jsonl"
    code, out, err = run([f"--init_checkpoint={ckpt_dir / 'xlnet_model.ckpt'}",
                          "--prompt=The cat", "--max_new_tokens=5",
                          f"--output_file={out_file}"])
    assert code == 0, err
    assert out == "The cat" + want.text + "\n"
    row = json.loads(out_file.read_text())
    assert row["text"] == want.text and row["stop_reason"] == want.stop_reason
    texts = tmp_path / "in.txt"
    texts.write_text("The cat\nHello world\n")
    code, out, err = run([f"--init_checkpoint={ckpt_dir}", f"--input_file={texts}",
                          "--max_new_tokens=5", "--strategy=sample", "--seed=4"])
    assert code == 0, err
    alone = generate(model, tok, "Hello world", 5, "sample", seed=5)
    assert out.splitlines()[1] == "Hello world" + alone.text


def test_fill_mode(ckpt_dir):
    code, out, err = run([f"--init_checkpoint={ckpt_dir}", "--mode=fill",
                          "--prompt=The <mask> sat on the mat"])
    assert code == 0, err
    assert out.startswith("The ") and out.rstrip().endswith("sat on the mat")


@pytest.mark.parametrize("argv, message", [
    ([], "--init_checkpoint is required"),
    (["--init_checkpoint=CKPT"], "exactly one of --prompt and --input_file"),
    (["--init_checkpoint=CKPT", "--prompt=a", "--input_file=x"], "exactly one of"),
    (["--init_checkpoint=CKPT", "--prompt=a", "--top_p=0"], "top_p=0.0 must be in (0, 1]"),
    (["--init_checkpoint=CKPT", "--prompt=a", "--max_new_tokens=0"], "--max_new_tokens=0"),
    (["--init_checkpoint=CKPT", "--prompt=a", "--input_file=/nonexistent.txt"], "exactly one"),
    (["--init_checkpoint=CKPT", "--input_file=/nonexistent/in.txt"], "/nonexistent/in.txt"),
    (["--init_checkpoint=CKPT", "--mode=fill", "--prompt=no blank"], "has no <mask>"),
    (["--init_checkpoint=/nonexistent/ckpt", "--prompt=a"], "does not exist"),
])
def test_errors_are_one_line_exit_2(ckpt_dir, argv, message):
    argv = [a.replace("CKPT", str(ckpt_dir)) for a in argv]
    code, out, err = run(argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_config_not_beside_the_checkpoint(ckpt_dir, tmp_path):
    for f in ckpt_dir.iterdir():
        if f.name.startswith("xlnet_model.ckpt"):
            shutil.copy(f, tmp_path / f.name)
    code, _, err = run([f"--init_checkpoint={tmp_path / 'xlnet_model.ckpt'}", "--prompt=a"])
    assert code == 2 and "pass --model_config" in err
