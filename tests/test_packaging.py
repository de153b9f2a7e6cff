"""`pip install .` installs xlnet_tf, the scripts as console commands and the committed
flagfiles; `import xlnet_tf` then works from any folder (the installed copy, not the
checkout).  The virtual environment reuses this interpreter's packages
(--system-site-packages, pip included: --without-pip needs no ensurepip) and installs
without network (--no-deps --no-build-isolation)."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("xlnet-pretrain", "xlnet-classify", "xlnet-squad", "xlnet-ner", "xlnet-race", "xlnet-records",
            "xlnet-train-spm", "xlnet-squad-eval", "xlnet-serving", "xlnet-transfer", "xlnet-extract-features")


def _tracked_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        pytest.skip("not a git checkout: cannot list the repository's files")
    return [f for f in out.stdout.splitlines() if f and not f.startswith("tests/")]


def test_pip_install_gives_the_package_commands_and_flagfiles(tmp_path):
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
