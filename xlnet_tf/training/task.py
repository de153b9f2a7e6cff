"""The Task protocol: what a training job (pretraining, classification, SQuAD) gives the
shared training loop."""


class Task:
    """What a training job provides to :func:`xlnet_tf.training.train`.  Subclasses
    override the methods."""

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
        """-> (per-replica mean loss, new_state, {metric name: scalar}).

        With gradient accumulation ``batch`` and ``state`` are one micro-batch's rows: every
        tensor of both has the batch's rows on its first axis."""
        raise NotImplementedError

    def loss_weight(self, batch):
        """The denominator of ``loss``'s mean over ``batch`` (default: its rows).  Gradient
        accumulation weights each micro-batch's loss by its share of the whole batch's, so
        the accumulated gradient is the whole batch's (e.g. pretraining averages over the
        predicted tokens, which micro-batches need not hold equally many of)."""
        import tensorflow as tf
        first = tf.nest.flatten(batch)[0]
        return tf.cast(tf.shape(first)[0], tf.float32)

    def micro_batch_rows(self, per_replica_batch, num_micro_batches):
        """Which rows of a replica's batch make each micro-batch: ``num_micro_batches`` lists
        of ``per_replica_batch / num_micro_batches`` row indices (default: consecutive
        slices)."""
        size = per_replica_batch // num_micro_batches
        return [list(range(k * size, (k + 1) * size)) for k in range(num_micro_batches)]

    def export(self, model, model_dir):
        """Called once at the end (chief only): e.g. write original-named weights."""
