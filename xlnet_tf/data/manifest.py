"""Manifests: small JSON files that say how a data directory was built.

A data directory (pretraining records, fine-tuning features, ...) is only usable with the
settings it was built with: a model trained with ``seq_len=512`` cannot read records cut at
``seq_len=128``, an uncased vocabulary does not fit cased text, and so on. The builder
writes every such setting into a JSON manifest beside its outputs; the reader compares the
manifest with its own flags and stops with a message that names each disagreeing key, the
two values, and what to do.

Helpers here are format-agnostic:

* :func:`atomic_output` / :func:`write_json_atomic` — write to a temporary name in the
  target folder and ``os.replace`` it into place only when the write finished, so a failed
  or killed run never leaves a file that looks complete (and never half-overwrites one);
* :func:`read_json` — read a manifest with clear errors for a missing or corrupt file;
* :func:`diff` / :func:`compare` — find and report disagreements (:class:`ManifestMismatchError`);
* :func:`exclusive_lock` — a file lock (``fcntl.flock``) for read-modify-write of a file that
  several processes update, e.g. a merged manifest written by several builder tasks.
"""
import contextlib
import fcntl
import json
import os


class ManifestMismatchError(ValueError):
    """The data was built with settings that differ from the ones the reader was given."""


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside ``path``; renames it to ``path`` only on success.

    The temporary name is ``<path>.tmp-<pid>`` in the same folder (so the final rename is
    atomic on POSIX file systems). If the body raises, the temporary file is deleted and
    ``path`` is left untouched (an existing file there is neither removed nor altered).
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json_atomic(path, obj):
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` (temporary name + rename)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())


def read_json(path, what="manifest"):
    """Reads a JSON object from ``path``.

    Raises:
      FileNotFoundError: ``path`` does not exist (the message says ``what`` was expected).
      ValueError: the file is not valid JSON or not a JSON object.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist.")
    try:
        with open(path, "r", encoding="utf-8") as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(
            f"{what} {path!r} is not valid JSON ({e}); the run that wrote it may have been "
            f"interrupted or the file was edited by hand. Rebuild the data."
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {path!r} holds a JSON {type(obj).__name__}, expected an object.")
    return obj


def _same(a, b):
    """Equality for manifest values: ints/floats compare numerically, bools only with bools."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


_ABSENT = "(absent)"


def diff(manifest, expected):
    """Keys of ``expected`` whose value differs from ``manifest``.

    ``expected`` values that are None are not checked (the caller has no opinion).
    Returns a list of ``(key, manifest_value, expected_value)``; a key missing from the
    manifest reports ``"(absent)"`` as its manifest value.
    """
    out = []
    for key in sorted(expected):
        want = expected[key]
        if want is None:
            continue
        have = manifest.get(key, _ABSENT)
        if have is _ABSENT or not _same(have, want):
            out.append((key, have, want))
    return out


def compare(manifest, expected, *, source, have_name="built with", want_name="given",
            hint=""):
    """Raises :class:`ManifestMismatchError` listing every key where the two disagree.

    Args:
      manifest: dict read from the data directory.
      expected: dict of the caller's settings (None values are skipped).
      source: names the data in the message, e.g. ``"pretraining records in /data/rec"``.
      have_name, want_name: how the two sides are called in each line.
      hint: what to do, appended to the message.
    """
    mismatches = diff(manifest, expected)
    if not mismatches:
        return
    lines = [f"{source} do not match this run's settings:"]
    for key, have, want in mismatches:
        lines.append(f"  {key}: {have_name} {have!r}, {want_name} {want!r}")
    if hint:
        lines.append(hint)
    raise ManifestMismatchError("\n".join(lines))


@contextlib.contextmanager
def exclusive_lock(lock_path):
    """Holds an exclusive ``flock`` on ``lock_path`` (created if needed) for the ``with`` body.

    Serialises read-modify-write of shared files between processes on one machine (local
    or NFS-with-locking file systems; not object stores).
    """
    fd = os.open(os.fspath(lock_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
