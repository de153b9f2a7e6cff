"""What the refusal tests of every entry point share: run a script's main in this process
and capture what it printed, and a byte-for-byte snapshot of a folder."""
import contextlib
import importlib
import io
import os
import subprocess
import sys

from xlnet_tf import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, args):
    """``name.py`` (a script at the top of the repository) in this process through
    ``cli.run``; returns (exit code, stdout, stderr)."""
    script = importlib.import_module(name)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(script.define_flags, script.main, list(args), prog=f"{name}.py")
    return code, out.getvalue(), err.getvalue()


def generic_task(tmp_path):
    """run_classifier.py flags of a tiny generic CSV task (16 rows, labels 0/1) written under
    ``tmp_path/data``, its cache in ``tmp_path/cache``."""
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"{'good fine nice' if i % 2 else 'bad awful poor'} {i},{i % 2}\n"
                   for i in range(16))
    (data / "train.csv").write_text("text,label\n" + rows)
    (data / "dev.csv").write_text("text,label\n" + rows)
    return ["--task=generic", f"--data_dir={data}", "--text_a_column=text",
            "--label_column=label", "--label_list=0,1", f"--cache_dir={tmp_path / 'cache'}"]


def snapshot(folder):
    """{relative path: (size, mtime_ns, bytes)} of every file under ``folder``."""
    result = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                result[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns, f.read())
    return result


@contextlib.contextmanager
def another_run_holding(folder, flag):
    """A process that holds ``folder``'s run lock (as a running script does) for the
    ``with`` body; yields its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from xlnet_tf import io\n"
         "with io.folder_lock(sys.argv[1], sys.argv[2]):\n"
         "    print('locked', flush=True); time.sleep(120)", str(folder), flag],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def assert_refused(code, err, *needles):
    """Exit 2, no traceback, and ONE error line (the last one on stderr; progress lines of
    the log may come before it) naming every needle.  Returns the line."""
    assert code == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]
