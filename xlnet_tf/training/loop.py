"""The one training loop of xlnet_tf, shared by pretraining, classification and SQuAD.

A *task* (:class:`xlnet_tf.training.task.Task`) supplies the model, the per-replica input
pipeline, the per-replica loop state (the Transformer-XL memory for pretraining, nothing
for fine-tuning) and the loss.  :func:`train` runs these steps:

  * build the state: the model and the Keras 3 optimizer inside ``strategy.scope()`` (the
    optimizer is built on the trainable variables there, before the first step) and the
    checkpoint with everything a resumed run needs (model, optimizer and its step, the
    dropout RNG states, the loss scale);
  * restore or initialise: resume from the newest readable checkpoint in model_dir, else
    ``--init_checkpoint``; the input position is the step, so a resumed run skips exactly
    the batches already consumed;
  * the step: all-reduce the gradients, clip them by global norm (the pre-clip norm is
    logged), scale the ``layer_{l}`` gradients by the layer-wise decay, apply them;
  * gradient accumulation (``grad_accum_steps = N > 1``): the step's batch (the GLOBAL batch
    of one optimizer step, as without accumulation) is cut, on every replica, into N
    micro-batches of rows; their gradients are computed one after the other (a
    ``tf.while_loop`` with ``parallel_iterations=1``: only one micro-batch's activations are
    alive at a time) and summed, each weighted by its share of the batch's loss
    denominator (:meth:`Task.loss_weight`), so the sum is the gradient of the full batch's
    loss; the all-reduce, loss-scale check, clipping, layer-wise decay and the optimizer
    then act once on that accumulated gradient.  The per-row loop state (the memory) is
    cut by the same rows: micro-batch k of step s continues micro-batch k of step s-1, i.e.
    exactly the rows it continues without accumulation.  The input, the checkpoints (only
    between optimizer steps) and a resume's skip are those of the unaccumulated run;
  * the loop: ``iterations`` steps per loop (one ``tf.function`` loop on TPUs, a host loop
    over a compiled step elsewhere); the per-replica state is explicit loop state,
    re-initialised (zero memory) at the start of every loop as the original TPU loop did;
  * after every loop: a console progress line with steps/s, tokens/s and an ETA,
    TensorBoard scalars, and a checkpoint every ``save_steps``.
"""
import dataclasses
import logging
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from xlnet_tf.training import optimization
from xlnet_tf.training.checkpoints import init_from_checkpoint, restore_latest, save_checkpoint
from xlnet_tf.training.distribute import is_chief, release_host_memory
from xlnet_tf.training.memory import micro_batch_size, per_replica_batch_size
from xlnet_tf.training.run_dir import check_model_dir, write_identity

log = logging.getLogger("xlnet_tf")


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
    grad_accum_steps: int = 1

    @property
    def micro_batch_size(self):
        """The global batch of one micro-batch: ``global_batch_size / grad_accum_steps``."""
        return micro_batch_size(self.global_batch_size, self.grad_accum_steps)

    def validate(self):
        if self.train_steps <= 0:
            raise ValueError(f"--train_steps must be > 0, got {self.train_steps}")
        if self.iterations <= 0:
            raise ValueError(f"--iterations must be > 0, got {self.iterations}")
        micro_batch_size(self.global_batch_size, self.grad_accum_steps)
        if self.save_steps is not None and self.save_steps <= 0:
            raise ValueError(f"--save_steps must be > 0, got {self.save_steps}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.train_steps and self.warmup_steps:
            raise ValueError(f"--warmup_steps={self.warmup_steps} must be in [0, train_steps="
                             f"{self.train_steps})")


# ---------------------------------------------------------------------------- loss scaling
class _DynamicLossScale:
    """Dynamic loss scaling for mixed_float16: the loss is multiplied by the scale before
    differentiation and the all-reduced gradients divided by it again; a step whose
    gradients overflow gets zero gradients and halves the scale (down to 1), and
    ``GROWTH_STEPS`` finite steps in a row double it.

    Not ``keras.optimizers.LossScaleOptimizer``: it unscales inside ``apply``, i.e. after
    this loop's global-norm clipping, which must see (and log) the true gradients; and it
    skips an overflowing step without advancing ``optimizer.iterations``, which is this
    loop's step: the learning-rate schedule position and, on resume, the input position."""

    GROWTH_STEPS = 2000

    def __init__(self):
        agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.scale = tf.Variable(2.0 ** 15, trainable=False, aggregation=agg)
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, aggregation=agg)

    def checkpoint_items(self):
        return {"loss_scale": self.scale, "good_steps": self.good_steps}

    def unscale(self, grads):
        """True gradients (zeros after an overflow); updates the scale."""
        grads = [g / self.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
        grow = tf.logical_and(finite, self.good_steps >= self.GROWTH_STEPS - 1)
        self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale),
                                   tf.maximum(self.scale / 2.0, 1.0)))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)),
                                        self.good_steps + 1, tf.zeros_like(self.good_steps)))
        return grads


# ---------------------------------------------------------------------------- state
@dataclasses.dataclass
class _State:
    model: object
    variables: list          # trainable variables, in gradient order
    optimizer: object
    schedule: object         # learning-rate schedule (step -> rate)
    scales: list             # layer-wise decay factor per variable
    loss_scale: object       # _DynamicLossScale or None
    checkpoint: tf.train.Checkpoint


def _build_state(task, config, strategy):
    """Model, optimizer, loss scale and checkpoint, created inside the strategy scope."""
    with strategy.scope():
        model = task.build_model()
        variables = model.trainable_variables
        name_of = {id(v): n for n, v in model.original_name_map().items()}
        names = [name_of.get(id(v), v.path) for v in variables]
        optimizer, schedule = optimization.create_optimizer(
            config.learning_rate, config.train_steps, config.warmup_steps,
            config.min_lr_ratio, config.weight_decay, config.adam_epsilon,
            config.decay_method, variables=variables, names=names)
        loss_scale = _DynamicLossScale() if config.precision == "mixed_float16" else None
        extra = loss_scale.checkpoint_items() if loss_scale is not None else {}
        # the dropout RNG states: restored with the weights so a resumed run draws the same
        # dropout masks as an uninterrupted one
        extra["rng"] = [layer.seed_generator.state for layer in model._flatten_layers()
                        if getattr(layer, "seed_generator", None) is not None]
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **extra)
    scales = optimization.layerwise_decay_scales(names, model.xlnet_config.n_layer,
                                                 config.lr_layer_decay_rate)
    return _State(model, variables, optimizer, schedule, scales, loss_scale, checkpoint)


def _restore_or_initialise(state, manager, task, model_dir, chief, init_checkpoint):
    """Resume from model_dir, else load ``init_checkpoint``; returns the start step.

    The chief restores the newest readable checkpoint of model_dir; another worker its own
    temporary folder's, else the chief's newest.
    """
    restored = restore_latest(manager, state.checkpoint) if chief else None
    if not chief and manager.latest_checkpoint is None and tf.train.latest_checkpoint(model_dir):
        state.checkpoint.restore(tf.train.latest_checkpoint(model_dir)).expect_partial()
        restored = model_dir
    if restored:
        log.info("resumed from %s at step %d", restored, int(state.optimizer.iterations.numpy()))
    elif init_checkpoint:
        result = init_from_checkpoint(state.model, init_checkpoint)
        log.info("initialised from %s: %s", init_checkpoint, result)
    return int(state.optimizer.iterations.numpy())


# ---------------------------------------------------------------------------- the step
def micro_batch_rows(task, per_replica_batch, accum_steps):
    """int32 [N, b]: the rows of a replica's batch that make micro-batch k (row k), from
    :meth:`Task.micro_batch_rows`, checked to cut the batch into N equal disjoint parts."""
    if per_replica_batch % accum_steps:
        raise ValueError(f"the per-replica batch {per_replica_batch} is not divisible by "
                         f"--grad_accum_steps={accum_steps}")
    rows = np.asarray(task.micro_batch_rows(per_replica_batch, accum_steps), np.int32)
    if rows.shape != (accum_steps, per_replica_batch // accum_steps) or sorted(
            rows.ravel().tolist()) != list(range(per_replica_batch)):
        raise ValueError(f"{type(task).__name__}.micro_batch_rows({per_replica_batch}, "
                         f"{accum_steps}) does not cut the batch into {accum_steps} equal "
                         f"disjoint parts: {rows.tolist()}")
    return rows


def _make_step_fn(task, state, clip, replicas, accum_steps=1, per_replica=None):
    """One replica's training step: ``(batch, loop state) -> (new loop state, metrics)``;
    with ``accum_steps > 1`` the gradient is accumulated over that many micro-batches of the
    batch's rows (see the module docstring)."""
    model, variables, optimizer = state.model, state.variables, state.optimizer
    loss_scale, scales = state.loss_scale, state.scales

    def gradients(batch, loop_state, share=None):
        """Gradients of the (share-weighted, per-replica, loss-scaled) loss of ``batch``."""
        with tf.GradientTape() as tape:
            loss, new_state, metrics = task.loss(model, batch, loop_state, True)
            scaled = tf.cast(loss, tf.float32) / replicas
            if share is not None:
                scaled = scaled * share
            if loss_scale is not None:
                scaled = scaled * loss_scale.scale
        grads = tape.gradient(scaled, variables)
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                 for g in grads]
        return grads, dict(metrics, loss=loss), new_state

    rows = micro_batch_rows(task, per_replica, accum_steps) if accum_steps > 1 else None

    def accumulated_gradients(batch, loop_state):
        """The sum over the micro-batches of their share-weighted gradients: the gradient of
        the whole batch's loss, one micro-batch's activations alive at a time."""
        rows_t = tf.constant(rows)                                      # [N, b]
        total = tf.cast(task.loss_weight(batch), tf.float32)

        def micro(k, loop_state):
            idx = rows_t[k]                                             # [b]

            def take(x):
                return tf.gather(x, idx)
            micro_batch = tf.nest.map_structure(take, batch)
            share = tf.math.divide_no_nan(tf.cast(task.loss_weight(micro_batch), tf.float32),
                                          total)
            grads, metrics, new_rows = gradients(
                micro_batch, tf.nest.map_structure(take, loop_state), share)

            def put(old, new):
                return tf.tensor_scatter_nd_update(old, idx[:, None], tf.cast(new, old.dtype))
            loop_state = tf.nest.map_structure(put, loop_state, new_rows, check_types=False)
            metrics = {k: share * tf.cast(v, tf.float32) for k, v in metrics.items()}
            return grads, metrics, loop_state

        grads, metrics, loop_state = micro(tf.constant(0), loop_state)
        present = [i for i, g in enumerate(grads) if g is not None]    # the same every time

        def body(k, sums, metric_sums, loop_state):
            g, m, loop_state = micro(k, loop_state)
            return (k + 1, [s + g[i] for s, i in zip(sums, present)],
                    {key: metric_sums[key] + m[key] for key in metric_sums}, loop_state)

        _, sums, metrics, loop_state = tf.while_loop(
            lambda k, *_: k < accum_steps, body,
            (tf.constant(1), [grads[i] for i in present], metrics, loop_state),
            parallel_iterations=1)
        for i, s in zip(present, sums):
            grads[i] = s
        return grads, metrics, loop_state

    def step_fn(batch, loop_state):
        if rows is None:
            grads, metrics, new_state = gradients(batch, loop_state)
        else:
            grads, metrics, new_state = accumulated_gradients(batch, loop_state)
        if replicas > 1:                                                  # global mean grad
            grads = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, grads)
        if loss_scale is not None:
            grads = loss_scale.unscale(grads)
        grads, gnorm = optimization.clip_by_global_norm(grads, clip)
        grads = optimization.apply_layerwise_decay(grads, scales)
        if replicas > 1:
            # Keras sums gradients over replicas again inside apply_gradients
            grads = [g / replicas for g in grads]
        optimizer.apply_gradients(zip(grads, variables))
        metrics = {k: tf.cast(v, tf.float32) for k, v in metrics.items()}
        return new_state, dict(metrics, grad_norm=gnorm)

    return step_fn


# ---------------------------------------------------------------------------- the loop
def _make_loop(strategy, task, step_fn, per_replica):
    """``run(iterator, n)``: n steps from a fresh loop state -> the metrics averaged over
    the steps (and the replicas).

    On TPUs the n steps run as one on-device loop (host round trips are expensive there).
    On CPUs/GPUs a host loop over a compiled step is as fast and lets grappler/oneDNN
    optimise the step graph fully: inside a tf.while_loop body the bfloat16 matmul
    rewrites did not apply and mixed_bfloat16 ran ~25 % slower."""
    mean = tf.distribute.ReduceOp.MEAN

    if isinstance(strategy, tf.distribute.TPUStrategy):
        def accumulate_step(batch, state, sums):
            state, metrics = step_fn(batch, state)
            return state, {k: sums[k] + metrics[k] for k in sums}

        @tf.function
        def graph_loop(iterator, num_steps):
            state = strategy.run(task.initial_state, args=(per_replica,))
            state, sums = strategy.run(step_fn, args=(next(iterator), state))
            for _ in tf.range(num_steps - 1):
                state, sums = strategy.run(accumulate_step, args=(next(iterator), state, sums))
            return {k: strategy.reduce(mean, v, axis=None) / tf.cast(num_steps, tf.float32)
                    for k, v in sums.items()}

        return lambda iterator, n: graph_loop(iterator, tf.constant(n))

    @tf.function
    def init_state():
        return strategy.run(task.initial_state, args=(per_replica,))

    @tf.function
    def one_step(iterator, state):
        state, metrics = strategy.run(step_fn, args=(next(iterator), state))
        return state, {k: strategy.reduce(mean, v, axis=None) for k, v in metrics.items()}

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

    return host_loop


# ---------------------------------------------------------------------------- logging
class _Progress:
    """The progress line after every loop (once, on stdout; the log gets it at debug level)
    and the TensorBoard scalars."""

    def __init__(self, summary_dir, start_step, total_steps, tokens_per_step):
        self.start, self.total, self.tokens = start_step, total_steps, tokens_per_step
        self.writer = tf.summary.create_file_writer(summary_dir)
        self.first = None          # (time, step) of the first report

    def report(self, step, metrics, dt, n):
        sps = n / max(dt, 1e-9)
        now = time.time()
        if self.first is None:
            # the first loop includes tracing and compiling the step: its own rate is all
            # there is to go on; later ETAs use the time since the first report only
            self.first = (now, step)
            eta = None if step < self.total else 0.0
        else:
            t1, s1 = self.first
            eta = (self.total - step) * (now - t1) / max(step - s1, 1)
        parts = [f"step {step}/{self.total}"]
        parts += [f"{k} {v:.4g}" for k, v in metrics.items()]
        parts += [f"{sps:.2f} steps/s", f"{sps * self.tokens:,.0f} tokens/s",
                  "ETA after the next loop (this one includes compiling)" if eta is None
                  else f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}"]
        line = " | ".join(parts)
        log.debug(line)
        print(line, flush=True)   # the user-facing progress of every training script
        with self.writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(k, v)
            tf.summary.scalar("steps_per_sec", sps)
            tf.summary.scalar("tokens_per_sec", sps * self.tokens)

    def close(self):
        self.writer.flush()


# ---------------------------------------------------------------------------- train
def _per_replica_batch(config, strategy):
    return per_replica_batch_size(config.global_batch_size, strategy.num_replicas_in_sync,
                                  config.grad_accum_steps)


def _training_stage(step, saved):
    """Where an interrupted run stopped (the Ctrl-C line)."""
    return f"training at step {step} (" + (f"the checkpoint of step {saved} is kept"
                                           if saved else "no checkpoint yet") + ")"


def train(task, config, strategy, init_checkpoint=None, callback=None, *,
          dir_flag="--model_dir", on_first_checkpoint=None):
    """Run (or resume) training; returns ``{"step", "history", "model"}``.

    ``callback(step, metrics, model)`` is called after every loop.  The folder's identity
    (``task.json``) is written with the first checkpoint this run saves, after
    ``on_first_checkpoint()`` (the chief's; e.g. a script's settings files): a run that
    fails before it leaves a folder that is not tied to its settings.  ``dir_flag`` names
    model_dir in messages (the flag of the script that runs)."""
    from xlnet_tf import cli
    config.validate()
    model_dir = config.model_dir
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    per_replica = _per_replica_batch(config, strategy)
    check_model_dir(model_dir, task.identity, dir_flag)
    cli.note_stage("setting up training (no checkpoint of this run yet)")
    accum = config.grad_accum_steps
    log.info("strategy %s: %d replica(s); global batch %d, per-replica batch %d%s",
             type(strategy).__name__, replicas, config.global_batch_size, per_replica,
             f" in {accum} micro-batches of {per_replica // accum}" if accum > 1 else "")

    state = _build_state(task, config, strategy)
    # another worker keeps its (identical) checkpoints in a temporary folder of its own
    ckpt_dir = model_dir if chief else os.path.join(model_dir, f".worker_tmp_{id(strategy)}")
    manager = tf.train.CheckpointManager(state.checkpoint, ckpt_dir,
                                         max_to_keep=config.max_to_keep)
    start_step = _restore_or_initialise(state, manager, task, model_dir, chief,
                                        init_checkpoint)
    if start_step >= config.train_steps:
        log.info("model_dir already at step %d >= train_steps %d; nothing to train",
                 start_step, config.train_steps)
        if chief:
            task.export(state.model, model_dir)
        return {"step": start_step, "history": [], "model": state.model}

    def dataset_fn(ctx):
        return task.dataset(ctx, ctx.get_per_replica_batch_size(config.global_batch_size),
                            start_step)

    iterator = iter(strategy.distribute_datasets_from_function(
        dataset_fn, options=tf.distribute.InputOptions(experimental_fetch_to_device=False)))
    step_fn = _make_step_fn(task, state, config.clip, replicas, config.grad_accum_steps,
                            per_replica)
    run_loop = _make_loop(strategy, task, step_fn, per_replica)
    progress = _Progress(os.path.join(ckpt_dir, "train"), start_step, config.train_steps,
                         config.global_batch_size * config.tokens_per_example)
    save_steps = config.save_steps or config.train_steps
    history = []
    step = start_step
    recorded, saved = False, start_step
    cli.note_stage(_training_stage(step, saved))
    while step < config.train_steps:
        next_save = (step // save_steps + 1) * save_steps
        n = min(config.iterations, config.train_steps - step, next_save - step)
        t0 = time.time()
        metrics = {k: float(v) for k, v in run_loop(iterator, n).items()}
        dt = time.time() - t0
        step += n
        metrics["learning_rate"] = float(state.schedule(step - 1))
        progress.report(step, metrics, dt, n)
        history.append({"step": step, **metrics})
        if step % save_steps == 0 or step == config.train_steps:
            if chief and not recorded:
                if on_first_checkpoint is not None:
                    on_first_checkpoint()
                write_identity(model_dir, task.identity)
                recorded = True
            save_checkpoint(manager, step)
            saved = step
        cli.note_stage(_training_stage(step, saved))
        if callback is not None:
            callback(step, metrics, state.model)
    progress.close()
    if chief:
        task.export(state.model, model_dir)
    else:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return {"step": step, "history": history, "model": state.model}


def evaluate_dataset(model_call, dataset):
    """Run ``model_call(batch)`` over a finite dataset on one device; concatenates numpy
    outputs (used by classification/SQuAD evaluation, which is cheap next to training)."""
    outputs = {}
    fn = tf.function(model_call)
    for batch in dataset:
        out = fn(batch)
        for k, v in out.items():
            outputs.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v, 0) for k, v in outputs.items()}
