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
        """-> (per-replica mean loss, new_state, {metric name: scalar})."""
        raise NotImplementedError

    def export(self, model, model_dir):
        """Called once at the end (chief only): e.g. write original-named weights."""
