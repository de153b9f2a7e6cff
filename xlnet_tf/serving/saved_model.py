"""Versioned SavedModel export for TensorFlow Serving (any model with an ExportArchive).

Layout on disk (TF Serving's "model base path" with numbered version folders)::

    export_dir/
      1/                          <- one version; TF Serving serves the highest number
        saved_model.pb
        variables/...
        assets/spiece.model       <- the SentencePiece model (a tf.saved_model.Asset)
        assets.extra/export_info.json   <- labels, max_seq_length, task, ... (for people)

A version is written under a temporary hidden name in ``export_dir`` and renamed into place
when complete, so TF Serving (which polls the folder) never sees a half-written version and
an existing version is never overwritten.

:func:`write_archive` is the common path of every export (the classifier's in
``xlnet_tf.classification.export``, SQuAD's in ``xlnet_tf.squad.export``);
:func:`load_saved_model` loads a version folder with the tensorflow-text ops registered.
Serving needs those ops in the server too (see README.md, "Export for TensorFlow Serving").
The TF Serving REST emulation is in ``xlnet_tf.serving.rest``; ``python -m xlnet_tf.serving``
is ``saved_model_cli`` with the ops registered.
"""
import contextlib
import logging
import os
import shutil
import tempfile

import tensorflow as tf

from xlnet_tf.io import apply_default_mode, describe_write_error, is_write_failure, \
    write_json_atomic

log = logging.getLogger("xlnet_tf")

SPIECE_ASSET_NAME = "spiece.model"
EXPORT_INFO_NAME = "export_info.json"

# ---------------------------------------------------------------------------- versions
def next_version(export_dir):
    """1 + the highest numeric version folder in ``export_dir`` (1 when there is none)."""
    if not os.path.isdir(export_dir):
        return 1
    numbers = [int(n) for n in os.listdir(export_dir) if n.isdigit()]
    return max(numbers, default=0) + 1


def check_export_dir(export_dir, version=None):
    """Clear errors before any work: ``export_dir`` must be a folder (or absent) and the
    version folder must not exist yet.  Returns the version number to write."""
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ValueError(f"--export_dir {export_dir!r} exists and is not a folder; TF Serving "
                         f"needs a folder of numbered versions")
    if version is None:
        return next_version(export_dir)
    version = int(version)
    if version <= 0:
        raise ValueError(f"export version must be a positive integer, got {version}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"{target!r} already exists; versions are never overwritten - "
                              f"choose another version or leave it unset (next free number)")
    return version


@contextlib.contextmanager
def _versioned_output(export_dir, version):
    """Yields a temporary folder inside ``export_dir``; renames it to ``export_dir/version``
    when the body succeeds, deletes it otherwise (a failed write, e.g. a full disk, raises
    ``xlnet_tf.io.WriteError`` naming the version folder).  The version folder gets the usual
    permissions (0755 under umask 022, not mkdtemp's 0700), so TF Serving running as another
    user can read it."""
    target = os.path.join(export_dir, str(version))
    tmp = None
    try:
        os.makedirs(export_dir, exist_ok=True)
        tmp = apply_default_mode(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir))
        yield tmp
        if os.path.exists(target):
            raise FileExistsError(f"{target!r} appeared while exporting; not overwriting it")
        apply_default_mode(tmp, tree=True)
        os.rename(tmp, target)
    except Exception as e:  # noqa: BLE001 - TensorFlow reports a full disk as an OpError
        if isinstance(e, FileExistsError) or not is_write_failure(e):
            raise
        raise describe_write_error(target, e) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _attach_asset(archive, name, path):
    """Make ``path`` a SavedModel asset (copied into ``assets/``) reachable as
    ``loaded.<name>.asset_path`` after ``tf.saved_model.load``.

    ExportArchive has no public call for plain file assets: its ``track`` only collects
    variables and lookup tables.  The asset is therefore set on the archive's root trackable
    (the object ``write_out`` saves)."""
    root = getattr(archive, "_tf_trackable", None)
    if root is None:  # pragma: no cover - a Keras release without the attribute
        raise RuntimeError("this Keras release's ExportArchive has no _tf_trackable; cannot "
                           "attach the SentencePiece asset")
    setattr(root, name, tf.saved_model.Asset(path))


def write_archive(archive, export_dir, version=None, assets=None, extra_files=None):
    """Write a ``keras.export.ExportArchive`` as ``export_dir/<version>/`` (temporary name,
    then rename; an existing version is never overwritten) - the common path of every export.

    Args:
      archive: the ExportArchive with its endpoints added.
      version: folder number; default the next free one.
      assets: {attribute name: (file name, bytes)} saved as SavedModel assets
        (``assets/<file name>``, reachable as ``loaded.<attribute>.asset_path``).
      extra_files: {file name: JSON-able object} written to ``assets.extra/`` (not loaded by
        TensorFlow; for people and tools).
    Returns:
      the version folder's path.
    """
    version = check_export_dir(export_dir, version)
    with _versioned_output(export_dir, version) as tmp, \
            tempfile.TemporaryDirectory() as staging:
        for attr, (file_name, data) in (assets or {}).items():
            # an asset keeps its file name in assets/: stage the bytes under that name
            staged = os.path.join(staging, file_name)
            with open(staged, "wb") as f:
                f.write(data)
            _attach_asset(archive, attr, staged)
        archive.write_out(tmp, verbose=False)
        if extra_files:
            extra = os.path.join(tmp, "assets.extra")
            os.makedirs(extra, exist_ok=True)
            for name, obj in extra_files.items():
                write_json_atomic(os.path.join(extra, name), obj)
    path = os.path.join(export_dir, str(version))
    log.info("exported SavedModel version %s to %s", version, path)
    return path


def text_and_ids_archive(model, tokenizer, serve_text, text_spec, run, ids_shape):
    """The ``keras.export.ExportArchive`` of a task export: ``serving_default`` =
    ``serve_text`` (raw text, ``text_spec``) and ``predict_ids`` = ``run(input_ids int32,
    seg_ids int32, input_mask float32)`` on packed features of shape ``ids_shape`` (e.g.
    ``[None, T]``); ``model`` and ``tokenizer`` (a layer) are tracked."""
    import keras

    def predict_ids(input_ids, seg_ids, input_mask):
        return run(tf.cast(input_ids, tf.int32), tf.cast(seg_ids, tf.int32),
                   tf.cast(input_mask, tf.float32))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint("serving_default", serve_text, input_signature=text_spec)
    archive.add_endpoint("predict_ids", predict_ids, input_signature=[
        tf.TensorSpec(ids_shape, tf.int32, name="input_ids"),
        tf.TensorSpec(ids_shape, tf.int32, name="seg_ids"),
        tf.TensorSpec(ids_shape, tf.float32, name="input_mask")])
    return archive


def export_with_spiece(export_dir, version, spiece_model, build_archive, export_info):
    """Write ``export_dir/<version>/`` (default the next free number) of the archive
    ``build_archive(spiece model bytes)``, the SentencePiece model as its asset and
    ``export_info`` in ``assets.extra/``; returns the version folder's path."""
    with open(spiece_model, "rb") as f:
        spm_bytes = f.read()
    version = check_export_dir(export_dir, version)
    return write_archive(build_archive(spm_bytes), export_dir, version,
                         assets={"spiece_model": (SPIECE_ASSET_NAME, spm_bytes)},
                         extra_files={EXPORT_INFO_NAME: export_info})


def check_version_dir(path, flag="--dir"):
    """``path`` must be ONE version folder (holding ``saved_model.pb``).  The export root
    (the folder of numbered versions TF Serving is pointed at) is named as such with the
    version to add; anything else is a FileNotFoundError naming ``flag`` (a flag such as
    ``--dir``, or words such as "SavedModel folder")."""
    def named(p):
        return f"{flag}={p}" if flag.startswith("-") else f"{flag} {p!r}"

    if not os.path.isdir(path):
        raise FileNotFoundError(f"{named(path)} does not exist or is not a folder; pass a "
                                f"version folder such as export_dir/1")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return
    versions = sorted(int(n) for n in os.listdir(path) if n.isdigit()
                      and os.path.isfile(os.path.join(path, n, "saved_model.pb")))
    if versions:
        newest = versions[-1]
        raise FileNotFoundError(
            f"{named(path)} is the export root (it holds the version folder(s) "
            f"{', '.join(map(str, versions))}), not a SavedModel; add /{newest} (the version "
            f"folder): {named(os.path.join(path, str(newest)))}")
    raise FileNotFoundError(f"{named(path)} holds no saved_model.pb; pass a version folder "
                            f"such as export_dir/1")


_LOADED = {}


def load_saved_model(saved_model_dir):
    """``tf.saved_model.load`` with ``tensorflow_text`` imported first (its ops must be
    registered before a graph that uses them is loaded); cached per folder."""
    import tensorflow_text  # noqa: F401 - registers the SentencePiece / normalize ops

    key = os.path.abspath(saved_model_dir)
    if key not in _LOADED:
        check_version_dir(saved_model_dir, "SavedModel folder")
        if not os.path.exists(os.path.join(key, "saved_model.pb")):
            check_saved_model_files(saved_model_dir)
        try:
            _LOADED[key] = tf.saved_model.load(key)
        except Exception:  # noqa: BLE001 - name the damaged file when there is one
            check_saved_model_files(key)
            raise
    return _LOADED[key]


def check_saved_model_files(saved_model_dir, variables=True):
    """Clear errors for a damaged SavedModel: ValueError naming ``saved_model.pb`` or the
    ``variables/variables.index`` / ``.data-*`` file that is truncated or foreign
    (``variables``: read every variable once as well)."""
    from tensorflow.core.protobuf import saved_model_pb2

    from xlnet_tf.modeling import checkpoint as ckpt_lib
    pb = os.path.join(saved_model_dir, "saved_model.pb")
    if not os.path.isfile(pb):
        raise FileNotFoundError(f"{saved_model_dir!r} holds no saved_model.pb; pass a version "
                                f"folder such as export_dir/1")
    try:
        with open(pb, "rb") as f:
            saved_model_pb2.SavedModel().ParseFromString(f.read())
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ValueError(f"{pb!r} is truncated or not a SavedModel ({type(e).__name__}); "
                         f"export the model again") from None
    prefix = os.path.join(saved_model_dir, "variables", "variables")
    if variables and os.path.exists(prefix + ".index"):
        try:
            ckpt_lib.verify_checkpoint(prefix)
        except ValueError as e:
            raise ValueError(f"SavedModel {saved_model_dir!r}: {e}; export the model "
                             f"again") from None
