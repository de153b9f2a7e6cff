"""What a model_dir / output_dir is tied to: the job's identity (task, model size, sequence
settings) is written as ``task.json`` beside the first checkpoint and compared on every
restart, so a folder that holds another model's checkpoint is refused before anything is
written; a folder whose run failed before its first checkpoint is not tied to anything."""
import os

from xlnet_tf import io as io_lib

IDENTITY_NAME = "task.json"


def _diffs(have, identity, where):
    return [f"{k}: {where} has {have.get(k)!r}, this run has {v!r}"
            for k, v in identity.items() if k in have and have[k] != v]


def has_checkpoint(folder):
    """True when ``folder`` holds a checkpoint (a training ``ckpt-N`` or the final
    ``xlnet_model.ckpt``): only then does its recorded identity protect anything."""
    return os.path.isdir(folder) and any(name.endswith(".index") for name in os.listdir(folder))


def check_model_dir(model_dir, identity, flag="--model_dir"):
    """Refuse a model_dir that already holds a different job's checkpoint (ValueError naming
    ``flag``, the script's flag of that folder).  The identity of a folder without any
    checkpoint (a run that failed or was stopped before its first one) does not count."""
    path = os.path.join(model_dir, IDENTITY_NAME)
    if not os.path.exists(path) or not has_checkpoint(model_dir):
        return
    diffs = _diffs(io_lib.read_json(path, f"{flag} identity"), identity,
                   flag.lstrip("-"))
    if diffs:
        raise ValueError(f"{flag} {model_dir!r} holds a checkpoint of a different model ("
                         + "; ".join(diffs) + f"); use a new {flag} or the same settings")


def check_output_dir(output_dir, identity, config_name):
    """check_model_dir, plus the settings an earlier fine-tuning run saved in
    OUTPUT_DIR/<config_name> (``{"identity": {...}}``): another task or model is refused."""
    check_model_dir(output_dir, identity, "--output_dir")
    path = os.path.join(output_dir, config_name)
    if not os.path.exists(path) or not has_checkpoint(output_dir):
        return
    have = io_lib.read_json(path, "fine-tuning settings").get("identity", {})
    diffs = _diffs(have, identity, "output_dir")
    if diffs:
        raise ValueError(f"--output_dir {output_dir!r} holds a model fine-tuned with other "
                         f"settings ({'; '.join(diffs)}); use a new --output_dir or the same "
                         f"settings")


def write_identity(model_dir, identity):
    """model_dir/task.json (written with the first checkpoint, once training really runs)."""
    os.makedirs(model_dir, exist_ok=True)
    io_lib.write_json_atomic(os.path.join(model_dir, IDENTITY_NAME), identity)
