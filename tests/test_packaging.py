"""`pip install .` installs xlnet_tf, the scripts as console commands and the committed
flagfiles; `import xlnet_tf` then works from any folder (the installed copy, not the
checkout).  The virtual environment reuses this interpreter's packages
(--system-site-packages, pip included: --without-pip needs no ensurepip) and installs
without network (--no-deps --no-build-isolation)."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("xlnet-pretrain", "xlnet-classify", "xlnet-squad", "xlnet-ner", "xlnet-race", "xlnet-records",
            "xlnet-train-spm", "xlnet-squad-eval", "xlnet-serving", "xlnet-transfer", "xlnet-extract-features",
            "xlnet-generate")


def _tracked_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        pytest.skip("not a git checkout: cannot list the repository's files")
    return [f for f in out.stdout.splitlines() if f and not f.startswith("tests/")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment with the repository installed by pip; (its python, its folder,
    a folder outside the checkout, the environment without PYTHONPATH)."""
    tmp_path = tmp_path_factory.mktemp("packaging")
    src = tmp_path / "src"
    for f in _tracked_files():
        os.makedirs(src / os.path.dirname(f), exist_ok=True)
        shutil.copy2(os.path.join(REPO, f), src / f)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    py = venv / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--disable-pip-version-check", str(src)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return py, venv, elsewhere, env


def test_pip_install_gives_the_package_commands_and_flagfiles(installed):
    py, venv, elsewhere, env = installed
    probe = subprocess.run(
        [str(py), "-c", "import xlnet_tf, run_classifier, xlnet_tf.pretraining.run as r;"
                        "print(xlnet_tf.__file__); print(run_classifier.__file__);"
                        "print(r.DEMO_FINETUNE_FLAGS)"],
        capture_output=True, text=True, cwd=elsewhere, env=env)
    assert probe.returncode == 0, probe.stderr[-2000:]
    pkg, script, flagfile = probe.stdout.split()
    site = str(venv / "lib")
    assert pkg.startswith(site) and script.startswith(site), probe.stdout
    assert flagfile == str(venv / "share" / "xlnet_tf" / "configs" / "finetune_demo_sst2.flags")
    with open(flagfile) as f:
        assert "--task=sst-2" in f.read()
    for name in COMMANDS:
        proc = subprocess.run([str(venv / "bin" / name), "--help"], capture_output=True,
                              text=True, cwd=elsewhere, env=env)
        assert proc.returncode == 0 and "--" in proc.stdout + proc.stderr, (name, proc.stderr)
    # a usage error of an installed command is the same one line, exit 2
    proc = subprocess.run([str(venv / "bin" / "xlnet-classify"), "--output_dir", str(elsewhere)],
                          capture_output=True, text=True, cwd=elsewhere, env=env)
    assert proc.returncode == 2 and "nothing to do" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_readme_keras_snippet_runs_in_the_installed_package(installed, tmp_path,
                                                                  shared_data):
    """The README's Python snippet, run as a user would after `pip install .`: from a folder
    outside the checkout, on a (tiny, random) preset folder in the original layout, fine-tuned
    on 300 SST-2 sentences given as Python strings; the in-process model, the reloaded .keras
    file and the exported SavedModel must give the same probabilities (1e-5)."""
    import re

    import tensorflow as tf

    import xlnet_tf

    py, venv, elsewhere, env = installed
    sst2 = shared_data / "glue" / "SST-2" / "train.tsv"
    preset = tmp_path / "preset"
    preset.mkdir()
    shutil.copy(os.path.join(REPO, "tests", "fixtures", "spiece_test.model"),
                preset / "spiece.model")
    tf.keras.utils.set_random_seed(0)
    backbone = xlnet_tf.XLNetModel(xlnet_tf.XLNetConfig(
        n_token=32000, n_layer=1, d_model=16, n_head=2, d_head=8, d_inner=32))
    xlnet_tf.save_original_checkpoint(backbone, str(preset / "xlnet_model.ckpt"))
    backbone.xlnet_config.to_json(str(preset / "xlnet_config.json"))

    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    snippets = [c for c in re.findall(r"```python\n(.*?)```", readme, re.S)
                if "XLNetTextClassifier.from_preset" in c]
    assert len(snippets) == 1, "the README's from_preset snippet is gone"
    code = snippets[0]
    assert len(code.strip().splitlines()) <= 10
    for old, new in (('"xlnet_cased_L-12_H-768_A-12"', repr(str(preset))),
                     ('"glue/SST-2/train.tsv"', repr(str(sst2)))):
        assert old in code, old
        code = code.replace(old, new)
    code += textwrap.dedent("""
        p = clf.predict_proba(["an instant classic"])
        q = tf.nn.softmax(again.predict(["an instant classic"]), -1).numpy()
        s = served(text_a=tf.constant(["an instant classic"]))["probabilities"].numpy()
        assert len(texts) == 300
        np.testing.assert_allclose(p, q, atol=1e-5)
        np.testing.assert_allclose(p, s, atol=1e-5)
        print("SNIPPET-OK", xlnet_tf.__file__)
        """)
    work = elsewhere / "readme_snippet"
    work.mkdir()
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=work,
                          env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("SNIPPET-OK " + str(venv / "lib")), proc.stdout[-2000:]
    assert (work / "sst2.keras").is_file() and (work / "export" / "sst2" / "1").is_dir()
