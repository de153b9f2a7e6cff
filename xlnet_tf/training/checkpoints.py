"""Which weights a run starts from or uses: resuming from the newest readable training
checkpoint, --init_checkpoint in any of the three formats (ours, the original's TF1 names,
Hugging Face), the weights for evaluation / prediction without training, and a float32 copy
of a model for serving."""
import glob
import logging
import os
import shutil

import tensorflow as tf

from xlnet_tf import io as io_lib
from xlnet_tf.modeling import checkpoint as ckpt_lib

log = logging.getLogger("xlnet_tf")


def restore_latest(manager, checkpoint):
    """Restore the newest readable checkpoint; a corrupt or half-written one is skipped with
    a warning and the previous one used.  Returns the restored path or None."""
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
            return path
        except Exception as e:  # noqa: BLE001 - truncated files raise all sorts of errors
            msg = (str(e).splitlines() or [type(e).__name__])[0][:200]
            log.warning("checkpoint %s is unreadable (%s: %s); trying the previous one", path,
                        type(e).__name__, msg)
    if manager.checkpoints:
        raise ValueError(f"none of the checkpoints in {manager.directory!r} "
                         f"({[os.path.basename(p) for p in manager.checkpoints]}) can be read; "
                         f"move them away to start again")
    return None


def save_checkpoint(manager, step):
    """``manager.save(checkpoint_number=step)``; a failed write (a full disk, a size limit, a
    read-only folder) removes what it left of ``ckpt-<step>`` (TensorFlow leaves a
    ``ckpt-<step>_temp`` folder) and raises ``xlnet_tf.io.WriteError`` naming the checkpoint;
    the ``checkpoint`` state file still names the previous one, so a rerun resumes there."""
    try:
        return manager.save(checkpoint_number=step)
    except Exception as e:  # noqa: BLE001 - TensorFlow reports a full disk as an OpError
        if not io_lib.is_write_failure(e):
            raise
        target = os.path.join(manager.directory, f"ckpt-{step}")
        shutil.rmtree(target + "_temp", ignore_errors=True)
        if manager.latest_checkpoint != target:
            for leftover in glob.glob(glob.escape(target) + ".*"):
                os.remove(leftover)
        raise io_lib.describe_write_error(target, e) from None


def init_from_checkpoint(model, path):
    """--init_checkpoint: ours (object-based), the original's (TF1 names) or Hugging Face."""
    if path is None or path == "":
        return None
    if os.path.isdir(path) and any(os.path.exists(os.path.join(path, f)) for f in
                                   ("model.safetensors", "pytorch_model.bin")) or \
            str(path).endswith((".safetensors", ".bin")):
        return ckpt_lib.load_hf_checkpoint(model, path)
    prefix = ckpt_lib.resolve_checkpoint_prefix(path)
    names = ckpt_lib.checkpoint_reader(prefix).get_variable_to_shape_map()
    if any(".ATTRIBUTES/" in n for n in names) and not set(model.original_name_map()) & set(names):
        return _restore_object_based(model, path, prefix)
    return ckpt_lib.load_original_checkpoint(model, prefix)


def _restore_object_based(model, path, prefix):
    """A training checkpoint (``ckpt-N`` of any of our scripts) as --init_checkpoint.

    The whole model when the checkpoint holds it (a fine-tuning run's own checkpoint);
    otherwise the backbone alone (``model.transformer``: a pretraining checkpoint has no
    task head, which keeps its initial values, as with the original-named export).  A
    backbone that does not fit (another size) is an error."""
    status = _restore(tf.train.Checkpoint(model=model), prefix)
    try:
        status.assert_existing_objects_matched()
        return f"restored object-based checkpoint {prefix}"
    except AssertionError as e:
        whole_error = str(e).splitlines()[0][:300]
    from xlnet_tf.modeling.model import XLNetModel
    # a bare backbone reads the backbone of a task's (or the pretraining's) checkpoint
    backbone = model if isinstance(model, XLNetModel) else getattr(model, "transformer", None)
    if backbone is None:
        raise ValueError(f"--init_checkpoint {path!r} does not fit this model: {whole_error}")
    status = _restore(tf.train.Checkpoint(model=tf.train.Checkpoint(transformer=backbone)),
                      prefix)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(f"--init_checkpoint {path!r} does not fit this model's backbone "
                         f"(another model size?): {str(e).splitlines()[0][:300]}") from None
    names = model.original_name_map()
    backbone_names = set(backbone.original_name_map())
    result = ckpt_lib.LoadResult(loaded=sorted(n for n in names if n in backbone_names),
                                 missing=sorted(n for n in names if n not in backbone_names),
                                 unused=[])
    log.info("--init_checkpoint %s: the backbone of a training checkpoint (%d variables); "
             "the %d head variables keep their initial values", prefix, len(result.loaded),
             len(result.missing))
    return result


def _restore(checkpoint, prefix):
    """``checkpoint.restore(prefix).expect_partial()``; a truncated or foreign ``.data`` file
    raises ValueError naming it."""
    try:
        return checkpoint.restore(prefix).expect_partial()
    except ckpt_lib.CORRUPT_CHECKPOINT_ERRORS as e:
        raise ckpt_lib.unreadable_data(prefix, e) from None


def checkpoint_step(prefix):
    """Step of a checkpoint: ``ckpt-N`` names, else its global_step variable, else 0."""
    tail = os.path.basename(prefix).rsplit("-", 1)
    if len(tail) == 2 and tail[1].isdigit():
        return int(tail[1])
    try:
        return int(tf.train.load_checkpoint(prefix).get_tensor("global_step"))
    except Exception:  # noqa: BLE001 - no global_step: step 0
        return 0


def restore_for_inference(model, output_dir, init_checkpoint, prefer_best=False,
                          head_name="task"):
    """Weights for evaluation / prediction / export without training, in this order: the
    best kept weights (``prefer_best``: OUTPUT_DIR/best/xlnet_model.ckpt), the newest
    checkpoint in output_dir, OUTPUT_DIR/xlnet_model.ckpt, else ``init_checkpoint`` (the
    original ignored it in predict mode and predicted with random heads).  Returns
    (source, step)."""
    best = os.path.join(output_dir, "best", "xlnet_model.ckpt")
    if prefer_best and os.path.exists(best + ".index"):
        ckpt_lib.load_original_checkpoint(model, best)
        return best, checkpoint_step(best)
    latest = tf.train.latest_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if latest:
        status = _restore(tf.train.Checkpoint(model=model), latest)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise ValueError(f"checkpoint {latest!r} does not fit this model: "
                             f"{str(e).splitlines()[0][:300]}") from None
        return latest, checkpoint_step(latest)
    final = os.path.join(output_dir, "xlnet_model.ckpt")
    if os.path.exists(final + ".index"):
        ckpt_lib.load_original_checkpoint(model, final)
        return final, checkpoint_step(final)
    if init_checkpoint:
        result = init_from_checkpoint(model, init_checkpoint)
        missing = getattr(result, "missing", [])
        if missing:
            log.warning("--init_checkpoint %s has no %s head (%d variables such as %s keep "
                        "their random initial values): its predictions are meaningless unless "
                        "it was fine-tuned for this task", init_checkpoint, head_name,
                        len(missing), missing[0])
        try:
            prefix = ckpt_lib.resolve_checkpoint_prefix(init_checkpoint)
        except (ValueError, FileNotFoundError):
            return init_checkpoint, 0
        return init_checkpoint, checkpoint_step(prefix)
    raise ValueError(f"no weights to use: --output_dir {output_dir!r} holds no checkpoint and "
                     f"no --init_checkpoint was given")


def copy_for_export(model, build):
    """A float32 copy of ``model`` (``build(dtype)`` makes an empty one) with the same
    weights, for serving."""
    fresh = build("float32")
    src = model.original_name_map()
    for name, var in fresh.original_name_map().items():
        var.assign(src[name].numpy())
    return fresh
