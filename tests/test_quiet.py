"""TensorFlow's start-up lines are silenced for the entry points (xlnet_tf.quiet), while a
real warning or an import error still reaches stderr; ``--verbose`` keeps everything."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xlnet_tf import quiet

REPO = Path(__file__).resolve().parents[1]

NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796313116.343321   21189 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "I0000 00:00:1796313116.400321   21189 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.",
    "E0000 00:00:1796313121.470558   21189 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]
REAL = "W0000 00:00:1.0  123 some_op.cc:9] a real warning the user must see"


def test_filter_keeps_only_real_lines():
    text = "\n".join(NOISE_LINES[:2] + [REAL] + NOISE_LINES[2:]) + "\n"
    assert quiet.filter_noise(text) == REAL + "\n"


@pytest.mark.parametrize("argv,env,want", [
    ([], {}, False), (["--verbose"], {}, True), (["--verbose=false"], {}, False),
    (["--verbose", "--noverbose"], {}, False), (["--verbose=1"], {}, True),
    ([], {"XLNET_TF_VERBOSE": "1"}, True), (["--verbosity=1"], {}, False)])
def test_verbose_requested(argv, env, want):
    assert quiet.verbose_requested(argv, env) is want


def _fake_tensorflow(tmp_path, fail=False):
    """A stand-in ``tensorflow`` package that writes the start-up lines (and one real line)
    straight to file descriptor 2, as TensorFlow's C++ does."""
    pkg = tmp_path / "fake" / "tensorflow"
    pkg.mkdir(parents=True)
    at_import = ("\n".join(NOISE_LINES[:3] + [REAL]) + "\n").encode()
    at_devices = (NOISE_LINES[4] + "\n").encode()
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        import os
        os.write(2, {at_import!r})
        if {fail!r}:
            raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
        class config:
            @staticmethod
            def list_physical_devices():
                os.write(2, {at_devices!r})
                return []
        """))
    return tmp_path / "fake"


def _run(fake, code, env_extra=None):
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{REPO}", **(env_extra or {})}
    env.pop("XLNET_TF_VERBOSE", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(fake), timeout=60)


def test_import_noise_is_silenced_and_real_lines_kept(tmp_path):
    fake = _fake_tensorflow(tmp_path)
    proc = _run(fake, "from xlnet_tf import quiet; print(quiet.quiet_tensorflow([]))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True\n"
    assert proc.stderr == REAL + "\n"


def test_verbose_keeps_everything(tmp_path):
    fake = _fake_tensorflow(tmp_path)
    proc = _run(fake, "from xlnet_tf import quiet; print(quiet.quiet_tensorflow(['--verbose']))")
    assert proc.stdout == "False\n"
    assert proc.stderr == ""          # nothing imported: the caller's own import shows all
    proc = _run(fake, "from xlnet_tf import quiet; quiet.quiet_tensorflow([]); print(1)",
                {"XLNET_TF_VERBOSE": "1"})
    assert proc.stderr == ""


def test_an_import_error_is_shown_with_its_lines(tmp_path):
    fake = _fake_tensorflow(tmp_path, fail=True)
    proc = _run(fake, "from xlnet_tf import quiet; quiet.quiet_tensorflow([])")
    assert proc.returncode == 1
    assert REAL in proc.stderr
    assert "ImportError: libtensorflow_framework.so.2" in proc.stderr
    assert "cudart_stub" not in proc.stderr


def test_a_script_error_comes_without_start_up_lines(tmp_path):
    """The real TensorFlow: run_pretrain.py with a bad flag prints one line, nothing else."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "XLNET_TF_VERBOSE")}
    proc = subprocess.run([sys.executable, str(REPO / "run_pretrain.py"),
                           f"--model_dir={tmp_path / 'm'}", "--train_batch_size=0"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        line for line in proc.stderr.strip().splitlines() if "--train_batch_size" in line]
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_light_commands_still_start_without_tensorflow(tmp_path):
    """SentencePiece training's --help-free error path runs main without importing
    TensorFlow (uses_tensorflow=False); the others import it quietly before main."""
    code = ("import sys\nfrom xlnet_tf import cli\n"
            "from xlnet_tf.tokenization import train_spm\n"
            "rc = cli.run(train_spm.define_flags, train_spm.main, ['--input=/nonexistent'],"
            " uses_tensorflow=False)\n"
            "print(rc, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(REPO), timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stderr
