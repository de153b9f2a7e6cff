"""The one training loop of xlnet_tf, shared by pretraining, classification and SQuAD.

A *task* supplies the model, the per-replica input pipeline, the per-replica loop state
(the Transformer-XL memory for pretraining, nothing for fine-tuning) and the loss.  The loop:

  * builds the model and the Keras 3 optimizer inside ``strategy.scope()`` (the optimizer is
    built on the trainable variables there, before the first step);
  * runs ``iterations`` steps per loop of ``strategy.run(step)`` (one ``tf.function`` loop on
    TPUs, a host loop over a compiled step elsewhere); the per-replica state is explicit loop
    state, re-initialised (zero memory) at the start of every ``iterations`` loop as the
    original TPU loop did;
  * all-reduces the gradients, clips them by global norm (the pre-clip norm is logged), scales
    the ``layer_{l}`` gradients by the layer-wise decay, then applies them;
  * keeps checkpoints with ``tf.train.CheckpointManager`` (model, optimizer and its step; the
    input position is the step: a resumed run skips exactly the batches already consumed), and
    on restart resumes from the newest readable checkpoint;
  * writes TensorBoard scalars and a console progress line with steps/s, tokens/s and an ETA.
"""
import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.training import optimization

log = logging.getLogger("xlnet_tf")

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


# ---------------------------------------------------------------------------- strategy
def configure_cpu_devices(num_cpus):
    """Split the host CPU into ``num_cpus`` logical devices (to run MirroredStrategy on a
    machine without GPUs).  Must run before TensorFlow initialises its devices."""
    if not num_cpus or num_cpus <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_cpus)])


def _connect_tpu(tpu, timeout):
    result = {}

    def connect():
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            result["resolver"] = resolver
        except Exception as e:  # noqa: BLE001 - reported below with the address
            result["error"] = e

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise RuntimeError(f"--strategy=tpu: no answer from TPU {tpu!r} within {timeout:.0f} s "
                           f"(a grpc:// address that nobody serves hangs); check --tpu")
    if "error" in result:
        raise RuntimeError(f"--strategy=tpu: no TPU found at {tpu!r}: {result['error']}; "
                           f"pass --tpu=<name or grpc://host:port> on a TPU VM, or use "
                           f"--strategy=one_device/mirrored") from None
    return result["resolver"]


def make_strategy(name="one_device", tpu=None, num_gpus=None, tpu_timeout=60.0):
    """tf.distribute strategy by name; TensorFlow's distribution is the engine for scale."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "tpu":
        resolver = _connect_tpu(tpu or "", tpu_timeout)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if gpus:
        devices = [d.name for d in gpus[: num_gpus or len(gpus)]]
    else:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def set_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}, got {precision!r}")
    keras.mixed_precision.set_global_policy(precision)


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0)


# ---------------------------------------------------------------------------- config
@dataclasses.dataclass
class TrainConfig:
    model_dir: str
    train_steps: int
    learning_rate: float
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    adam_epsilon: float = 1e-8
    decay_method: str = "poly"
    clip: float = 1.0
    lr_layer_decay_rate: float = 1.0
    iterations: int = 100
    save_steps: int = None
    max_to_keep: int = 5
    global_batch_size: int = 1
    tokens_per_example: int = 1
    precision: str = "float32"
    seed: int = 0

    def validate(self):
        if self.train_steps <= 0:
            raise ValueError(f"--train_steps must be > 0, got {self.train_steps}")
        if self.iterations <= 0:
            raise ValueError(f"--iterations must be > 0, got {self.iterations}")
        if self.save_steps is not None and self.save_steps <= 0:
            raise ValueError(f"--save_steps must be > 0, got {self.save_steps}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.train_steps and self.warmup_steps:
            raise ValueError(f"--warmup_steps={self.warmup_steps} must be in [0, train_steps="
                             f"{self.train_steps})")


class Task:
    """What a training job provides to :func:`train`.  Subclasses override the methods."""

    #: written as model_dir/task.json and compared on restart (a model_dir holding another
    #: model's checkpoint is refused before anything is written)
    identity = {}

    def build_model(self):
        raise NotImplementedError

    def dataset(self, input_context, per_replica_batch, skip_batches):
        """Per-replica batches (static shapes) for input pipeline ``input_context``;
        ``skip_batches`` training steps were already done (resume)."""
        raise NotImplementedError

    def initial_state(self, per_replica_batch):
        """Per-replica loop state at the start of every ``iterations`` loop (e.g. zero mems)."""
        return ()

    def loss(self, model, batch, state, training):
        """-> (per-replica mean loss, new_state, {metric name: scalar})."""
        raise NotImplementedError

    def export(self, model, model_dir):
        """Called once at the end (chief only): e.g. write original-named weights."""


# ---------------------------------------------------------------------------- checkpoints
def check_model_dir(model_dir, identity):
    """Refuse a model_dir that already holds a different job's checkpoint."""
    path = os.path.join(model_dir, "task.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    diffs = [f"{k}: model_dir has {saved.get(k)!r}, this run has {v!r}"
             for k, v in identity.items() if k in saved and saved[k] != v]
    if diffs:
        raise ValueError(f"--model_dir {model_dir!r} holds a checkpoint of a different model ("
                         + "; ".join(diffs) + "); use a new --model_dir or the same settings")


def check_output_dir(output_dir, identity, config_name):
    """check_model_dir, plus the settings an earlier fine-tuning run saved in
    OUTPUT_DIR/<config_name> (``{"identity": {...}}``): another task or model is refused."""
    check_model_dir(output_dir, identity)
    path = os.path.join(output_dir, config_name)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        have = json.load(f).get("identity", {})
    diffs = [f"{k}: output_dir has {have.get(k)!r}, this run has {v!r}"
             for k, v in identity.items() if k in have and have[k] != v]
    if diffs:
        raise ValueError(f"--output_dir {output_dir!r} holds a model fine-tuned with other "
                         f"settings ({'; '.join(diffs)}); use a new --output_dir or the same "
                         f"settings")


def write_json_atomic(path, obj):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


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


def init_from_checkpoint(model, path):
    """--init_checkpoint: ours (object-based), the original's (TF1 names) or Hugging Face."""
    if path is None or path == "":
        return None
    if os.path.isdir(path) and any(os.path.exists(os.path.join(path, f)) for f in
                                   ("model.safetensors", "pytorch_model.bin")) or \
            str(path).endswith((".safetensors", ".bin")):
        return ckpt_lib.load_hf_checkpoint(model, path)
    prefix = ckpt_lib.resolve_checkpoint_prefix(path)
    names = dict(tf.train.list_variables(prefix))
    if any(".ATTRIBUTES/" in n for n in names) and not set(model.original_name_map()) & set(names):
        status = tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise ValueError(f"--init_checkpoint {path!r} does not fit this model: {e}") from None
        return f"restored object-based checkpoint {prefix}"
    return ckpt_lib.load_original_checkpoint(model, prefix)


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
        status = tf.train.Checkpoint(model=model).restore(latest).expect_partial()
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


# ---------------------------------------------------------------------------- the loop
class _Progress:
    def __init__(self, start_step, total_steps, tokens_per_step):
        self.start, self.total, self.tokens = start_step, total_steps, tokens_per_step
        self.t0 = time.time()

    def line(self, step, metrics, dt, n):
        sps = n / max(dt, 1e-9)
        done = step - self.start
        elapsed = time.time() - self.t0
        eta = (self.total - step) * elapsed / max(done, 1)
        parts = [f"step {step}/{self.total}"]
        parts += [f"{k} {v:.4g}" for k, v in metrics.items()]
        parts += [f"{sps:.2f} steps/s", f"{sps * self.tokens:,.0f} tokens/s",
                  f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}"]
        return " | ".join(parts), sps


def train(task, config, strategy, init_checkpoint=None, callback=None):
    """Run (or resume) training; returns a dict with the final step and metrics history."""
    config.validate()
    model_dir = config.model_dir
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if config.global_batch_size % replicas:
        raise ValueError(f"--train_batch_size={config.global_batch_size} is not divisible by "
                         f"the {replicas} replicas")
    per_replica = config.global_batch_size // replicas
    check_model_dir(model_dir, task.identity)
    log.info("strategy %s: %d replica(s); global batch %d, per-replica batch %d",
             type(strategy).__name__, replicas, config.global_batch_size, per_replica)

    with strategy.scope():
        model = task.build_model()
        variables = model.trainable_variables
        name_of = {id(v): n for n, v in model.original_name_map().items()}
        names = [name_of.get(id(v), v.path) for v in variables]
        optimizer, schedule = optimization.create_optimizer(
            config.learning_rate, config.train_steps, config.warmup_steps,
            config.min_lr_ratio, config.weight_decay, config.adam_epsilon,
            config.decay_method, variables=variables, names=names)
        loss_scale = good_steps = None
        if config.precision == "mixed_float16":
            # dynamic loss scaling: halve on overflow (that step's gradients are zeroed),
            # double after 2000 finite steps
            agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
            loss_scale = tf.Variable(2.0 ** 15, trainable=False, aggregation=agg)
            good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, aggregation=agg)
        extra = {"loss_scale": loss_scale, "good_steps": good_steps} if loss_scale is not None \
            else {}
        # the dropout RNG states: restored with the weights so a resumed run draws the same
        # dropout masks as an uninterrupted one
        extra["rng"] = [layer.seed_generator.state for layer in model._flatten_layers()
                        if getattr(layer, "seed_generator", None) is not None]
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **extra)
    n_layer = model.xlnet_config.n_layer
    scales = optimization.layerwise_decay_scales(names, n_layer, config.lr_layer_decay_rate)

    ckpt_dir = model_dir if chief else os.path.join(model_dir, f".worker_tmp_{id(strategy)}")
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=config.max_to_keep)
    restored = restore_latest(manager, checkpoint) if chief else None
    if not chief and manager.latest_checkpoint is None and tf.train.latest_checkpoint(model_dir):
        checkpoint.restore(tf.train.latest_checkpoint(model_dir)).expect_partial()
        restored = model_dir
    if restored:
        log.info("resumed from %s at step %d", restored, int(optimizer.iterations.numpy()))
    elif init_checkpoint:
        result = init_from_checkpoint(model, init_checkpoint)
        log.info("initialised from %s: %s", init_checkpoint, result)
    if chief:
        os.makedirs(model_dir, exist_ok=True)
        write_json_atomic(os.path.join(model_dir, "task.json"), task.identity)

    start_step = int(optimizer.iterations.numpy())
    if start_step >= config.train_steps:
        log.info("model_dir already at step %d >= train_steps %d; nothing to train",
                 start_step, config.train_steps)
        if chief:
            task.export(model, model_dir)
        return {"step": start_step, "history": [], "model": model}

    def dataset_fn(ctx):
        return task.dataset(ctx, ctx.get_per_replica_batch_size(config.global_batch_size),
                            start_step)

    dist_ds = strategy.distribute_datasets_from_function(
        dataset_fn, options=tf.distribute.InputOptions(experimental_fetch_to_device=False))
    iterator = iter(dist_ds)

    def step_fn(batch, state):
        with tf.GradientTape() as tape:
            loss, new_state, metrics = task.loss(model, batch, state, True)
            scaled = tf.cast(loss, tf.float32) / replicas
            if loss_scale is not None:
                scaled = scaled * loss_scale
        grads = tape.gradient(scaled, variables)
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                 for g in grads]
        ctx = tf.distribute.get_replica_context()
        if replicas > 1:
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)        # global mean grad
        if loss_scale is not None:
            grads = [g / loss_scale for g in grads]
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
            grow = tf.logical_and(finite, good_steps >= 1999)
            loss_scale.assign(tf.where(finite, tf.where(grow, loss_scale * 2.0, loss_scale),
                                       tf.maximum(loss_scale / 2.0, 1.0)))
            good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)),
                                       good_steps + 1, tf.zeros_like(good_steps)))
        grads, gnorm = optimization.clip_by_global_norm(grads, config.clip)
        grads = optimization.apply_layerwise_decay(grads, scales)
        if replicas > 1:
            # Keras sums gradients over replicas again inside apply_gradients
            grads = [g / replicas for g in grads]
        optimizer.apply_gradients(zip(grads, variables))
        metrics = dict(metrics, loss=tf.cast(loss, tf.float32), grad_norm=gnorm)
        return new_state, metrics

    def accumulate_step(batch, state, sums):
        state, metrics = step_fn(batch, state)
        return state, {k: sums[k] + metrics[k] for k in sums}

    @tf.function
    def train_loop(iterator, num_steps):
        state = strategy.run(task.initial_state, args=(per_replica,))
        state, sums = strategy.run(step_fn, args=(next(iterator), state))
        for _ in tf.range(num_steps - 1):
            state, sums = strategy.run(accumulate_step, args=(next(iterator), state, sums))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                / tf.cast(num_steps, tf.float32) for k, v in sums.items()}

    # On TPUs the --iterations steps run as one on-device loop (host round trips are
    # expensive there).  On CPUs/GPUs a host loop over a compiled step is as fast and lets
    # grappler/oneDNN optimise the step graph fully: inside a tf.while_loop body the
    # bfloat16 matmul rewrites did not apply and mixed_bfloat16 ran ~25 % slower.
    graph_loop = isinstance(strategy, tf.distribute.TPUStrategy)

    @tf.function
    def init_state():
        return strategy.run(task.initial_state, args=(per_replica,))

    @tf.function
    def one_step(iterator, state):
        state, metrics = strategy.run(step_fn, args=(next(iterator), state))
        return state, {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                       for k, v in metrics.items()}

    first_call = [True]

    def host_loop(iterator, num_steps):
        state, sums = init_state(), None
        for _ in range(num_steps):
            state, metrics = one_step(iterator, state)
            if first_call[0]:
                first_call[0] = False
                release_host_memory()
            sums = metrics if sums is None else {k: sums[k] + metrics[k] for k in sums}
        return {k: v / num_steps for k, v in sums.items()}

    writer = tf.summary.create_file_writer(os.path.join(
        model_dir if chief else ckpt_dir, "train"))
    progress = _Progress(start_step, config.train_steps,
                         config.global_batch_size * config.tokens_per_example)
    save_steps = config.save_steps or config.train_steps
    history = []
    step = start_step
    while step < config.train_steps:
        next_save = (step // save_steps + 1) * save_steps
        n = min(config.iterations, config.train_steps - step, next_save - step)
        t0 = time.time()
        metrics = (train_loop(iterator, tf.constant(n)) if graph_loop
                   else host_loop(iterator, n))
        metrics = {k: float(v) for k, v in metrics.items()}
        dt = time.time() - t0
        step += n
        lr = float(schedule(step - 1))
        metrics["learning_rate"] = lr
        line, sps = progress.line(step, metrics, dt, n)
        log.info(line)
        print(line, flush=True)
        with writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(k, v)
            tf.summary.scalar("steps_per_sec", sps)
            tf.summary.scalar("tokens_per_sec", sps * progress.tokens)
        history.append({"step": step, **metrics})
        if step % save_steps == 0 or step == config.train_steps:
            manager.save(checkpoint_number=step)
        if callback is not None:
            callback(step, metrics, model)
    writer.flush()
    if chief:
        task.export(model, model_dir)
    else:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return {"step": step, "history": history, "model": model}


def release_host_memory():
    """Give the heap memory the C library holds but no longer uses back to the OS
    (glibc ``malloc_trim``; a no-op elsewhere).  Called once after the first (compiling)
    training step: tracing and graph optimisation of the step leave ~0.2 GB of freed heap
    behind at XLNet-base, which would otherwise stay in the resident set for the run."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def evaluate_dataset(model_call, dataset, strategy=None):
    """Run ``model_call(batch)`` over a finite dataset on one device; concatenates numpy
    outputs (used by classification/SQuAD evaluation, which is cheap next to training)."""
    outputs = {}
    fn = tf.function(model_call)
    for batch in dataset:
        out = fn(batch)
        for k, v in out.items():
            outputs.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v, 0) for k, v in outputs.items()}


@contextlib.contextmanager
def null_scope():
    yield
