"""The original XLNet optimisation for Keras ``compile()``: linear warm-up then linear
(or cosine) decay of the learning rate, Adam, or BERT-style AdamW when weight decay is on.

These are the objects the training loop of the scripts uses
(:mod:`xlnet_tf.training.optimization`), exposed for Keras users:

* :class:`WarmupPolyDecay` - the original ``get_train_op`` schedule;
* :class:`AdamWeightDecay` - the original's AdamW (no bias correction; LayerNorm and bias
  variables not decayed, decided from the original variable names);
* :func:`create_optimizer` - both, as the scripts build them;
* :func:`xlnet_optimizer` - the same for a model of this package, built on its trainable
  variables with their original names (what ``AdamWeightDecay`` needs) and with the
  original's global-norm gradient clipping.
"""
from xlnet_tf.training.optimization import (AdamWeightDecay, WarmupPolyDecay,  # noqa: F401
                                            create_optimizer, layerwise_decay_scales,
                                            use_weight_decay)


def xlnet_optimizer(model, learning_rate=1e-5, train_steps=None, warmup_steps=0,
                    min_lr_ratio=0.0, weight_decay=0.0, adam_epsilon=1e-8, clip=1.0,
                    decay_method="poly"):
    """An optimizer with the original fine-tuning recipe for ``model``.

    ``train_steps`` None keeps the learning rate constant after warm-up (the number of
    steps of a ``fit`` is not known when compiling); otherwise the rate decays linearly to
    ``learning_rate * min_lr_ratio`` at ``train_steps``.  ``weight_decay > 0`` gives
    :class:`AdamWeightDecay`, else Adam, as the original.  ``clip``: global-norm gradient
    clipping (the original's 1.0; None or 0 for none).
    """
    import keras
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if train_steps is None:
        schedule = WarmupPolyDecay(learning_rate, train_steps=warmup_steps + 1,
                                   warmup_steps=warmup_steps, min_lr_ratio=1.0)
    else:
        if int(train_steps) <= int(warmup_steps):
            raise ValueError(f"train_steps ({train_steps}) must exceed warmup_steps "
                             f"({warmup_steps})")
        schedule = WarmupPolyDecay(learning_rate, train_steps=int(train_steps),
                                   warmup_steps=int(warmup_steps), min_lr_ratio=min_lr_ratio,
                                   decay_method=decay_method)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    extra = {"global_clipnorm": float(clip)} if clip else {}
    if weight_decay == 0:
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.999,
                                     epsilon=adam_epsilon, **extra)
    optimizer = AdamWeightDecay(learning_rate=schedule, weight_decay_rate=weight_decay,
                                beta_1=0.9, beta_2=0.999, epsilon=adam_epsilon, **extra)
    by_id = {id(v): name for name, v in model.original_name_map().items()}
    variables = list(model.trainable_variables)
    names = [by_id.get(id(v), getattr(v, "path", v.name)) for v in variables]
    optimizer.build(variables, names=names)
    return optimizer
