"""xlnet_tf.io: atomic writes leave nothing behind on failure, write errors name the path,
files get the umask's permissions, the run lock refuses a second run."""
import errno
import json
import os
import stat
import subprocess
import sys

import pytest

from xlnet_tf import io as io_lib


def test_atomic_write_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io_lib.atomic_output(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_disk_full_becomes_a_write_error_naming_the_path(tmp_path):
    target = tmp_path / "records.tfrecord"
    with pytest.raises(io_lib.WriteError, match=r"cannot write .*records.tfrecord: the disk is "
                                                r"full; nothing was left in its place"):
        with io_lib.atomic_output(target) as tmp:
            open(tmp, "w").write("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert not os.listdir(tmp_path)


def test_output_path_under_a_file_is_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(io_lib.WriteError, match="afile/out.json: a file stands where a folder"):
        io_lib.write_json_atomic(tmp_path / "afile" / "out.json", {})


def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        io_lib.write_json_atomic(tmp_path / "a.json", {"x": 1})
        io_lib.copy_file_atomic(tmp_path / "a.json", tmp_path / "b.json")
    finally:
        os.umask(old)
    for name in ("a.json", "b.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    assert json.load(open(tmp_path / "b.json")) == {"x": 1}


def test_read_json_errors_name_the_file(tmp_path):
    p = tmp_path / "m.json"
    with pytest.raises(FileNotFoundError, match="m.json"):
        io_lib.read_json(p, "manifest")
    p.write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest .*m.json' is not valid JSON"):
        io_lib.read_json(p, "manifest")
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds a JSON list"):
        io_lib.read_json(p, "manifest")


def test_sha256(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert io_lib.sha256_file(p) == io_lib.sha256_bytes(b"abc") == want


def test_second_run_in_a_folder_is_refused_naming_the_first(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from xlnet_tf import io\n"
         "with io.folder_lock(sys.argv[1]):\n"
         "    print('locked', flush=True); time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(io_lib.FolderBusyError,
                           match=rf"--output_dir=.*run is in use by another run \(pid {holder.pid}"):
            with io_lib.folder_lock(folder):
                pass
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its process: the next run takes it
    with io_lib.folder_lock(folder, flag="--model_dir"):
        assert json.load(open(folder / io_lib.LOCK_INFO_NAME))["pid"] == os.getpid()
    assert not (folder / io_lib.LOCK_INFO_NAME).exists()


@pytest.mark.parametrize("data,needle", [
    ('{"a": 1}'.encode("utf-16"), "is UTF-16 LE text (it starts with the UTF-16 LE byte-order "
                                  "mark FF FE); convert it to UTF-8"),
    ('{"a": 1}'.encode("utf-16-be"), "looks like UTF-16 BE text without a byte-order mark"),
    ('{"a": 1}'.encode("utf-32"), "is UTF-32 LE text"),
    (__import__("gzip").compress(b'{"a": 1}'), "is gzip-compressed"),
    (b'{"a": 1}\n{"a": 2}\n', "one JSON value per line (JSON Lines; line 2 starts another)"),
])
def test_read_json_names_utf16_compressed_and_json_lines_files(tmp_path, data, needle):
    path = tmp_path / "in.json"
    path.write_bytes(data)
    with pytest.raises(ValueError) as e:
        io_lib.read_json(path, what="SQuAD file")
    assert needle in str(e.value) and str(path) in str(e.value)
    if "JSON Lines" not in needle:          # JSON Lines is fine as text; the others are not
        with pytest.raises(ValueError, match=r"data file .*in\.json' (is|looks like) "):
            io_lib.check_text_file(path, "data file")


def test_plain_and_utf8_bom_text_pass(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'\xef\xbb\xbf{"caf\xc3\xa9": 1}')        # a UTF-8 byte-order mark is fine
    assert io_lib.read_json(path) == {"café": 1}
    io_lib.check_text_file(path)
    assert io_lib.sniff_text_problem(b"plain ascii text") is None
    assert io_lib.sniff_text_problem(b"") is None
