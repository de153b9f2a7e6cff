"""Helpers for the tests of failing runs: a real size limit on written files (the kernel
answers EFBIG, as a full disk answers ENOSPC, to every writer: Python, TensorFlow's C++,
SentencePiece), folder snapshots, running an entry point in-process, tiny models."""
import contextlib
import io
import os
import pathlib
import resource
import signal

FIXTURE_SPM = str(pathlib.Path(__file__).resolve().parent / "fixtures" / "spiece_test.model")


@contextlib.contextmanager
def file_size_limit(nbytes):
    """Every file this process writes stops growing at ``nbytes`` (RLIMIT_FSIZE; SIGXFSZ
    ignored, so the write fails with EFBIG instead of killing the process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def snapshot(folder):
    """{relative path: (mode, size, mtime_ns, bytes)} of every file and folder under
    ``folder``: equal snapshots mean the folder is byte-for-byte unchanged."""
    result = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.stat(path)
            data = b""
            if name in files:
                with open(path, "rb") as f:
                    data = f.read()
            result[os.path.relpath(path, folder)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                     data)
    return result


def guarded_folder(path, files=None):
    """A folder holding earlier results (``files``: {name: text}); returns (path, snapshot)."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {"results.json": '{"accuracy": 0.9}\n'}).items():
        (path / name).write_text(text)
    return path, snapshot(path)


def run_entry(define_flags, main, argv, prog):
    """An entry point run in-process by ``xlnet_tf.cli.run``: (exit code, stdout, stderr)."""
    from xlnet_tf import cli
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.run(define_flags, main, list(argv), prog=prog)
    return code, out.getvalue(), err.getvalue()


def assert_refused(result, *needles):
    """Exit 2, one line on stderr with every needle, no traceback."""
    code, out, err = result
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert "Traceback" not in err + out, err[-3000:]
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err[-3000:]
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def tiny_classifier(n_token=2000):
    """A one-layer XLNetClassifier with its weights built."""
    from xlnet_tf.classification import XLNetClassifier
    from xlnet_tf.modeling.config import XLNetConfig
    model = XLNetClassifier(XLNetConfig(n_layer=1, d_model=16, n_head=2, d_head=8, d_inner=32,
                                        n_token=n_token), n_class=2, task_name="sst-2")
    model.original_name_map()   # builds the weights
    return model


def truncate(path, keep=0.5):
    """Cut ``path`` to ``keep`` of its size (a copy interrupted half way)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))
