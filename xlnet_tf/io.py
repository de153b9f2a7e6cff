"""File helpers every stage uses: one of each.

* :func:`atomic_output` / :func:`write_json_atomic` / :func:`write_text_atomic` /
  :func:`copy_file_atomic` -- write to a temporary name in the target folder and rename it
  into place only when the write finished, so a failed or killed run never leaves a file
  that looks complete (and never half-overwrites one).  Files get the usual permissions
  (0666 less the umask), so a model server running as another user can read them.
* :class:`WriteError` -- what a failed write raises: it names the path and says why
  (read-only folder, disk full, a file where a folder should be, ...).
* :func:`apply_default_mode` -- give a folder or file made by ``mkdtemp`` / ``mkstemp`` (0700
  / 0600) the usual permissions, so exports and run files can be read by another user.
* :func:`sha256_file` / :func:`sha256_bytes` -- content hashes (vocabularies, caches).
* :func:`read_json` -- a JSON object with clear errors for a missing or corrupt file.
* :func:`check_text_file` / :func:`sniff_text_problem` -- a UTF-16/UTF-32 or compressed file
  given where UTF-8 text is read, recognised by its first bytes and named.
* :func:`exclusive_lock` -- an ``flock`` for read-modify-write of a shared file.
* :func:`folder_lock` -- one run at a time per output folder; :func:`removed_on_error` -- a
  folder a failed preparation created is removed again.
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil

_WHY = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file is too large for the file system (or a size limit was hit)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file stands where a folder is expected",
    errno.EISDIR: "a folder stands where a file is expected",
}
# TensorFlow and SentencePiece report a failed write as their own exception (OutOfRangeError,
# ResourceExhaustedError, RuntimeError, ...) carrying the system's strerror in the message
_STRERROR = {os.strerror(code): code for code in _WHY}


def write_errno(e):
    """The errno of a failed write: an ``OSError``'s own, else the one whose system message
    (``No space left on device``, ``File too large``, ...) a library error carries; None for
    an error that is not a failed write."""
    if isinstance(e, OSError) and e.errno is not None:
        return e.errno
    text = str(e)
    return next((code for message, code in _STRERROR.items() if message in text), None)


class WriteError(OSError):
    """A file could not be written; ``str()`` names the path and the reason."""

    def __init__(self, path, cause):
        code = write_errno(cause)
        why = _WHY.get(code, getattr(cause, "strerror", None) or str(cause).splitlines()[0])
        super().__init__(code,
                         f"cannot write {path}: {why}; nothing was left in its place "
                         f"(free space or choose a writable location, then run again)")
        self.path = path

    def __str__(self):
        return self.strerror


def describe_write_error(path, e):
    """``WriteError`` for an ``OSError`` (or a library error that carries the system's reason,
    see :func:`write_errno`) raised while writing ``path`` (itself if it is one)."""
    return e if isinstance(e, WriteError) else WriteError(os.fspath(path), e)


def is_write_failure(e):
    """True for an error :func:`describe_write_error` should turn into a ``WriteError``: an
    ``OSError`` other than a missing file, or a library error carrying a write errno."""
    if isinstance(e, OSError):
        return not isinstance(e, FileNotFoundError)
    return isinstance(e, Exception) and write_errno(e) is not None


def default_mode(is_dir):
    """The permissions a new folder (0777) or file (0666) gets under the current umask."""
    return (0o777 if is_dir else 0o666) & ~_umask()


def _umask():
    # Linux shows the umask in /proc; setting and restoring it (the portable way) would
    # briefly give files other threads create at that moment no mask at all
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def apply_default_mode(path, tree=False):
    """``chmod`` ``path`` to :func:`default_mode` (0755 / 0644 under the usual umask 022):
    ``tempfile.mkdtemp`` / ``mkstemp`` create 0700 / 0600, which would keep a model server or
    a colleague running as another user from reading an export renamed from one.  ``tree``:
    everything under the folder ``path`` too (TensorFlow makes its folders 0755 whatever the
    umask)."""
    os.chmod(path, default_mode(os.path.isdir(path)))
    if tree:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                apply_default_mode(os.path.join(root, name))
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside ``path``; renames it to ``path`` only on success.

    The temporary name is ``<path>.tmp-<pid>`` in the same folder (so the final rename is
    atomic on POSIX file systems).  If the body raises, the temporary file is deleted and
    ``path`` is left untouched (an existing file there is neither removed nor altered); an
    ``OSError`` (or a TensorFlow error such as "File too large", see :func:`write_errno`)
    becomes a :class:`WriteError` naming ``path``.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                shutil.rmtree(tmp)
            else:
                os.remove(tmp)
        if is_write_failure(e):
            raise describe_write_error(path, e) from None
        raise


def write_text_atomic(path, text):
    """Writes ``text`` (UTF-8) to ``path`` through a temporary file, flushed to disk."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(path, obj):
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` (temporary name + rename)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def copy_file_atomic(src, dst):
    """Copies ``src`` to ``dst`` through a temporary file (no-op when they are the same file)."""
    if os.path.exists(dst) and os.path.samefile(src, dst):
        return dst
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# first bytes -> what the file is (compressed files: decompress them first)
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed (it starts with the gzip magic bytes 1F 8B); decompress "
                  "it first (gunzip)"),
    (b"BZh", "bzip2-compressed (it starts with the bzip2 magic bytes 'BZh'); decompress it "
             "first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed (it starts with the xz magic bytes); decompress it "
                      "first (unxz)"),
    (b"PK\x03\x04", "a zip archive (it starts with 'PK'); extract it first (unzip)"),
)
# byte-order marks of the wide Unicode encodings (UTF-32 LE before UTF-16 LE: FF FE 00 00)
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32 LE", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32 BE", "UTF-32"),
         (b"\xff\xfe", "UTF-16 LE", "UTF-16"), (b"\xfe\xff", "UTF-16 BE", "UTF-16"))


def sniff_text_problem(head):
    """Why bytes starting with ``head`` (the first few bytes of a file) are not UTF-8 text,
    or None: a UTF-16/UTF-32 byte-order mark, UTF-16 without one (every second byte of ASCII
    text is 0), or the magic bytes of gzip / bzip2 / xz / zip."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"is {what}"
    for bom, name, codec in _BOMS:
        if head.startswith(bom):
            return (f"is {name} text (it starts with the {name} byte-order mark "
                    f"{bom.hex(' ').upper()}); convert it to UTF-8 (e.g. "
                    f"iconv -f {codec} -t UTF-8 IN > OUT)")
    pairs = head[:len(head) // 2 * 2]
    if len(pairs) >= 4:
        even, odd = pairs[0::2], pairs[1::2]
        for name, zeros, text in (("UTF-16 LE", odd, even), ("UTF-16 BE", even, odd)):
            if not zeros.strip(b"\x00") and all(0 < b < 128 for b in text):
                return (f"looks like {name} text without a byte-order mark (every second "
                        f"byte is 0); convert it to UTF-8 (e.g. iconv -f {name.replace(' ', '')} "
                        f"-t UTF-8 IN > OUT)")
    return None


def check_text_file(path, what="file"):
    """Raises ValueError naming ``path`` (as ``what``) when its first bytes show it is not
    UTF-8 text (:func:`sniff_text_problem`); a missing file is left to the reader."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return
    problem = sniff_text_problem(head)
    if problem:
        raise ValueError(f"{what} {os.fspath(path)!r} {problem}")


def _json_lines_hint(path):
    """True when the file's first non-blank line is a complete JSON value by itself."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    return False
                return True
    return False


def read_json(path, what="JSON file"):
    """Reads a JSON object from ``path``.

    Raises:
      FileNotFoundError: ``path`` does not exist (the message says ``what`` was expected).
      ValueError: the file is not valid JSON or not a JSON object; a UTF-16 or compressed
        file and a JSON Lines file (one value per line) are named as such.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist.")
    check_text_file(path, what)
    try:
        with open(path, "r", encoding="utf-8-sig") as f:   # a UTF-8 byte-order mark is fine
            obj = json.load(f)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and _json_lines_hint(path):
            raise ValueError(
                f"{what} {path!r} holds one JSON value per line (JSON Lines; line {e.lineno} "
                f"starts another), expected a single JSON object") from None
        raise ValueError(
            f"{what} {path!r} is not valid JSON ({e}); the run that wrote it may have been "
            f"interrupted or the file was edited by hand.") from None
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{what} {path!r} is not valid JSON ({e}); the run that wrote it may have been "
            f"interrupted or the file was edited by hand.") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {path!r} holds a JSON {type(obj).__name__}, expected an object.")
    return obj


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


class FolderBusyError(ValueError):
    """Another running process holds the folder's run lock."""


LOCK_NAME = ".xlnet_tf.lock"
LOCK_INFO_NAME = ".xlnet_tf.lock.json"


@contextlib.contextmanager
def folder_lock(folder, flag="--output_dir"):
    """One run at a time per output folder: holds an exclusive lock on ``folder/.xlnet_tf.lock``
    for the ``with`` body (created with the folder if needed).  A second run gets
    :class:`FolderBusyError` naming the first one (pid, command, start time) at once,
    instead of both writing checkpoints over each other.  The lock is the operating
    system's (``flock``), so a killed run never leaves a stale lock behind."""
    import datetime
    import sys

    import filelock

    folder = os.fspath(folder)
    created = not os.path.exists(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise WriteError(folder, e) from None
    lock = filelock.FileLock(os.path.join(folder, LOCK_NAME), timeout=0)
    info_path = os.path.join(folder, LOCK_INFO_NAME)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            with open(info_path, encoding="utf-8") as f:
                other = json.load(f)
            who = (f"pid {other.get('pid')}, started {other.get('started')}: "
                   f"{other.get('command')}")
        except (OSError, ValueError):
            who = "another process"
        raise FolderBusyError(
            f"{flag}={folder} is in use by another run ({who}); wait until it finishes, "
            f"stop it, or choose another folder") from None
    except OSError as e:
        raise WriteError(os.path.join(folder, LOCK_NAME), e) from None
    try:
        write_json_atomic(info_path, {
            "pid": os.getpid(), "command": " ".join(sys.argv),
            "started": datetime.datetime.now().isoformat(timespec="seconds")})
        yield
    finally:
        # the lock file goes too (removed while still held), and the folder when this run
        # created it and left nothing in it: a refused run leaves no trace
        with contextlib.suppress(OSError):
            os.remove(info_path)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, LOCK_NAME))
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


@contextlib.contextmanager
def removed_on_error(folder):
    """Removes ``folder`` again when the ``with`` body fails with an error and the folder did
    not exist before it: a run that stops on a mistake leaves no half-prepared folder.  An
    existing folder is never removed, and neither is one after Ctrl-C (what was prepared is
    reused by the rerun)."""
    folder = os.fspath(folder)
    existed = os.path.exists(folder)
    try:
        yield folder
    except Exception:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise
