"""Learning-rate schedule, optimizers and gradient post-processing as in the original XLNet.

The original `model_utils.get_train_op` does, per step:

    lr     = warm-up, then linear ("poly", power 1) or cosine decay    -> `WarmupPolyDecay`
    grads  = clip_by_global_norm(grads, clip)   (gnorm = pre-clip norm) -> `clip_by_global_norm`
    grads *= lr_layer_decay_rate ** (n_layer - 1 - l) for layer_{l}     -> `layerwise_decay_scales`,
                                                                          `apply_layerwise_decay`
    Adam (weight_decay == 0) or BERT-style AdamW (weight_decay > 0)     -> `create_optimizer`,
                                                                          `AdamWeightDecay`

The training loop (`xlnet_tf/training/loop.py`) calls these in that order and then
`optimizer.apply_gradients(zip(grads, variables))`.

Step index (the off-by-one question)
------------------------------------
The original reads `global_step` to compute the learning rate and increments it only
after (or, on the AdamW path, alongside) the variable update, so the k-th update
(k = 1, 2, ...) uses `lr(k - 1)`: the very first update uses step 0 and, with
`warmup_steps > 0`, has learning rate exactly 0. Keras 3 calls the schedule with
`optimizer.iterations` *before* incrementing it, i.e. also `lr(k - 1)`. We keep that:
no shift, and the first update is a zero-lr step exactly as in the original.
(On the original AdamW path the manual `global_step` increment is grouped with the
train op without a control dependency on the read; `lr(k - 1)` is what it computes
whenever the read comes first, and what its Adam path always computes.)

Adam (weight_decay == 0)
------------------------
TF1 `tf.train.AdamOptimizer` (kernel `ApplyAdam`) does, with t = 1 on the first update:

    lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    m    = m + (g - m) * (1 - beta1)
    v    = v + (g^2 - v) * (1 - beta2)
    var  = var - lr_t * m / (sqrt(v) + epsilon)        # "epsilon hat": not bias-corrected

`keras.optimizers.Adam` (keras 3.15.1, `update_step`) computes
`alpha = lr * sqrt(1 - beta_2^(iterations+1)) / (1 - beta_1^(iterations+1))`,
the same `m`, `v` updates, and `var -= m * alpha / (sqrt(v) + epsilon)`: the same formula,
with epsilon in the same place, so we use it unchanged (only `epsilon=adam_epsilon`, which
must be passed because Keras' default is 1e-7). Float32 rounding differs in the last bits
only: TF1 keeps `beta^t` as a float32 running product where Keras recomputes
`beta ** t` in float32, and TF1's kernel forms `1 - beta` from float32 beta
(1 - float32(0.999) = 0.00099998713) where Keras rounds the double `1 - 0.999` (0.001),
i.e. an effective beta_2 that differs by 1.3e-8. `tests/training/test_optimization.py` checks two
steps against a float64 numpy implementation of the TF1 formula, with an epsilon large
enough that the epsilon placement is visible.

AdamW (weight_decay > 0)
------------------------
`AdamWeightDecay` is BERT's AdamW as the original uses it: no bias correction, decay
`wd * param` added to the Adam direction and scaled by lr; decay skipped for names
matching `LayerNorm`, `layer_norm`, `bias`, except `r_s_bias`, `r_r_bias`, `r_w_bias`,
which are decayed. Keras optimizers see variables, not names, so the original checkpoint
names are given once, when the optimizer is built:
`optimizer.build(variables, names=names)` or `create_optimizer(..., variables=, names=)`.
Unlike the original (which raised "Do not support weight_decay > 0 with multi-gpu"),
this works under every tf.distribute strategy, and the step counter always advances
(the original's did not under CrossShardOptimizer, zihangdai/xlnet#66, PR#164): it is
Keras' `optimizer.iterations`, incremented once per `apply_gradients` call.

Distribution notes for the training loop
----------------------------------------
* Create the optimizer *inside* `strategy.scope()` (Keras binds the optimizer to the
  strategy current at construction and creates `iterations` there) and build it there
  before the first step; then call `apply_gradients` inside `strategy.run`.
* Called in a replica context, Keras 3 all-reduces the gradients with SUM before the
  update. The loop therefore all-reduces first itself (each replica's loss divided by
  the number of replicas, so the sum is the gradient of the global mean loss), clips and
  scales that global gradient, and divides it by the number of replicas before
  `apply_gradients`, whose sum restores it: clipping sees the global norm, as
  `train_gpu.py` did when it averaged the towers before clipping (the original's TPU
  path clipped each shard's share before CrossShardOptimizer summed them).
* Checkpoint the optimizer with `tf.train.Checkpoint(optimizer=...)`: `iterations` and
  the `m`/`v` slots are optimizer variables and round-trip exactly.
"""

import math
import re

import keras
import tensorflow as tf

# Weight-decay name rules of the original (BERT's AdamWeightDecayOptimizer as configured
# by XLNet's get_train_op). Patterns are searched (`re.search`) in the original
# checkpoint name; the include list wins over the exclude list.
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
INCLUDE_IN_WEIGHT_DECAY = ("r_s_bias", "r_r_bias", "r_w_bias")

DECAY_METHODS = ("poly", "cos")

_LAYER_NAME_RE = re.compile(r"model/transformer/layer_(\d+)/")


# --------------------------------------------------------------------------------------
# Learning-rate schedule
# --------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="xlnet_tf")
class WarmupPolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then linear (`poly`) or cosine (`cos`) decay, as `get_train_op`.

    With `s` the number of updates already applied (`optimizer.iterations`, see the
    module docstring for why no +1):

        s < warmup_steps:  lr = learning_rate * s / warmup_steps
        otherwise, with d = min(s - warmup_steps, train_steps - warmup_steps)
                        and p = d / (train_steps - warmup_steps):
          poly: lr = (learning_rate - end) * (1 - p) + end,  end = learning_rate*min_lr_ratio
                (tf.train.polynomial_decay with power 1, cycle=False)
          cos:  lr = learning_rate * ((1 - a) * 0.5 * (1 + cos(pi * p)) + a),  a = min_lr_ratio
                (tf.train.cosine_decay with alpha = min_lr_ratio)

    Both end at `learning_rate * min_lr_ratio` at `s = train_steps` and stay there.
    Computed in float32 like the original.
    """

    def __init__(self, learning_rate, train_steps, warmup_steps=0, min_lr_ratio=0.0,
                 decay_method="poly", name=None):
        super().__init__()
        learning_rate = float(learning_rate)
        if not learning_rate > 0.0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps}.")
        if int(train_steps) != train_steps or train_steps <= warmup_steps:
            raise ValueError(
                f"train_steps ({train_steps}) must be an integer greater than warmup_steps "
                f"({warmup_steps}): the decay runs over train_steps - warmup_steps steps. "
                "Increase --train_steps or lower --warmup_steps.")
        min_lr_ratio = float(min_lr_ratio)
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}.")
        if decay_method not in DECAY_METHODS:
            raise ValueError(
                f"decay_method must be one of {DECAY_METHODS}, got {decay_method!r}.")
        self.learning_rate = learning_rate
        self.train_steps = int(train_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_lr_ratio = min_lr_ratio
        self.decay_method = decay_method
        self.name = name

    def __call__(self, step):
        with tf.name_scope(self.name or "WarmupPolyDecay"):
            step = tf.cast(step, tf.float32)
            lr = tf.constant(self.learning_rate, tf.float32)
            warmup = tf.constant(float(self.warmup_steps), tf.float32)
            decay_steps = tf.constant(float(self.train_steps - self.warmup_steps), tf.float32)

            if self.warmup_steps > 0:
                warmup_lr = step / warmup * lr  # same operation order as the original
            else:
                warmup_lr = tf.constant(0.0, tf.float32)

            p = tf.minimum(step - warmup, decay_steps) / decay_steps
            if self.decay_method == "poly":
                end = tf.constant(self.learning_rate * self.min_lr_ratio, tf.float32)
                decay_lr = (lr - end) * (1.0 - p) + end
            else:
                alpha = tf.constant(self.min_lr_ratio, tf.float32)
                cosine = 0.5 * (1.0 + tf.cos(math.pi * p))
                decay_lr = lr * ((1.0 - alpha) * cosine + alpha)
            return tf.where(step < warmup, warmup_lr, decay_lr)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "train_steps": self.train_steps,
            "warmup_steps": self.warmup_steps,
            "min_lr_ratio": self.min_lr_ratio,
            "decay_method": self.decay_method,
            "name": self.name,
        }


# --------------------------------------------------------------------------------------
# AdamW as the original
# --------------------------------------------------------------------------------------


def use_weight_decay(name, exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
                     include_in_weight_decay=INCLUDE_IN_WEIGHT_DECAY):
    """Whether the variable with original checkpoint name `name` gets weight decay.

    A name matching (re.search) any include pattern is decayed; otherwise a name matching
    any exclude pattern is not; everything else is. With the defaults: LayerNorm
    gamma/beta and every `.../bias` are not decayed, `r_w_bias`/`r_r_bias`/`r_s_bias`,
    kernels, embeddings, `seg_embed` and `mask_emb` are.
    """
    if any(re.search(pattern, name) for pattern in include_in_weight_decay):
        return True
    return not any(re.search(pattern, name) for pattern in exclude_from_weight_decay)


@keras.saving.register_keras_serializable(package="xlnet_tf")
class AdamWeightDecay(keras.optimizers.Optimizer):
    """BERT-style AdamW as used by the original XLNet when `weight_decay > 0`.

    Per variable with gradient g (no bias correction, unlike Adam):

        m      = beta_1 * m + (1 - beta_1) * g
        v      = beta_2 * v + (1 - beta_2) * g^2
        update = m / (sqrt(v) + epsilon)
        update = update + weight_decay_rate * param     (only if the name is decayed)
        param  = param - lr * update

    m and v are updated in place as m += (1 - beta_1)(g - m), v += (1 - beta_2)(g^2 - v):
    the same values up to float32 rounding, without the two extra variable-sized
    temporaries of the first form (0.5 GB of peak RSS in an XLNet-base pretraining step).

    The decay decision is made from the variable's original checkpoint name (see
    `use_weight_decay`), so the names must be given when building:

        with strategy.scope():
            opt = AdamWeightDecay(schedule, weight_decay_rate=0.01, epsilon=1e-6)
            opt.build(variables, names=names)      # names[i] belongs to variables[i]

    If the optimizer is left to build itself on the first `apply_gradients` (Keras'
    default), it has no names and raises a ValueError when `weight_decay_rate > 0`.
    Keras' own `weight_decay` argument and `exclude_from_weight_decay()` method are
    disabled to avoid a second, differently defined decay.

    Slots `m` and `v` are optimizer variables (checkpointed with the optimizer, created
    next to their variable under tf.distribute); the step counter is Keras'
    `iterations`, which advances once per `apply_gradients`.
    """

    def __init__(self, learning_rate=1e-3, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
                 include_in_weight_decay=INCLUDE_IN_WEIGHT_DECAY, name="AdamWeightDecay",
                 **kwargs):
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                "AdamWeightDecay takes weight_decay_rate=..., not Keras' weight_decay= "
                "(which would add a second, decoupled decay).")
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if weight_decay_rate < 0:
            raise ValueError(f"weight_decay_rate must be >= 0, got {weight_decay_rate}.")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}.")
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.exclude_patterns = tuple(exclude_from_weight_decay or ())
        self.include_patterns = tuple(include_in_weight_decay or ())
        self._decay_flags = []
        self._variable_names = []

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        raise NotImplementedError(
            "AdamWeightDecay decides weight decay from original checkpoint names: pass "
            "exclude_from_weight_decay=/include_in_weight_decay= patterns to the "
            "constructor and names= to build().")

    def build(self, var_list, names=None):
        """Creates the `m`/`v` slots and records which variables are decayed.

        Args:
          var_list: the trainable variables, in the order gradients will be given.
          names: original checkpoint names, `names[i]` for `var_list[i]`
            (e.g. from `xlnet_tf.modeling.checkpoint.original_names(model)`). Required when
            `weight_decay_rate > 0`.
        """
        if self.built:
            return
        var_list = list(var_list)
        current = tf.distribute.get_strategy()
        if current is not self._distribution_strategy:
            raise ValueError(
                "AdamWeightDecay was created under a different tf.distribute strategy than "
                "the one active at build(); create and build the optimizer inside the same "
                "`with strategy.scope():` block as the model.")
        if names is None:
            if self.weight_decay_rate > 0:
                raise ValueError(
                    "AdamWeightDecay with weight_decay_rate > 0 needs the original checkpoint "
                    "name of every variable to decide where weight decay applies: call "
                    "optimizer.build(variables, names=names) (or create_optimizer(..., "
                    "variables=variables, names=names)) before the first apply_gradients.")
            names = [getattr(v, "path", getattr(v, "name", "")) for v in var_list]
        names = list(names)
        if len(names) != len(var_list):
            raise ValueError(
                f"build() got {len(var_list)} variables but {len(names)} names; names must "
                "be parallel to the variables.")
        for n in names:
            if not isinstance(n, str):
                raise ValueError(f"Variable names must be strings, got {n!r}.")
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["m", "v"])
        self._variable_names = names
        self._decay_flags = [
            self.weight_decay_rate > 0
            and use_weight_decay(n, self.exclude_patterns, self.include_patterns)
            for n in names
        ]

    @property
    def decayed_names(self):
        """Original names of the variables that receive weight decay (after build)."""
        return [n for n, d in zip(self._variable_names, self._decay_flags) if d]

    def _chain_deps(self):
        """Control dependencies that serialise the per-variable updates inside one traced
        step: otherwise TensorFlow runs all of them at once and every variable's temporaries
        (next_m, next_v, sqrt, update: ~6 copies of each variable) are alive together, which
        cost ~1.3 GB at the XLNet-base shape.  One variable at a time keeps the arithmetic
        as it is."""
        chain = getattr(self, "_update_chain", None)
        if chain is None or not tf.inside_function() or chain[0] is not tf.compat.v1.get_default_graph():
            return []
        return [chain[1]]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        dtype = variable.dtype
        with tf.control_dependencies(self._chain_deps()):
            # Sparse (IndexedSlices) gradients are densified: the original's update is dense.
            grad = tf.cast(tf.convert_to_tensor(gradient), dtype)
            lr = tf.cast(learning_rate, dtype)
            # 1 - beta is formed in Python double before the cast, as the original's graph did
            # (float32(1 - 0.999) = 0.001, whereas 1 - float32(0.999) = 0.00099998713).
            one_minus_beta_1 = tf.cast(1.0 - self.beta_1, dtype)
            one_minus_beta_2 = tf.cast(1.0 - self.beta_2, dtype)

            # In place (the form of TF1's ApplyAdam kernel): m += (1 - b1)(g - m) equals
            # BERT's b1 m + (1 - b1) g up to float32 rounding, and it needs one
            # variable-sized temporary instead of three (-0.5 GB peak at XLNet-base).
            self.assign_add(m, (grad - m) * one_minus_beta_1)
            self.assign_add(v, (tf.square(grad) - v) * one_minus_beta_2)
            update = m / (tf.sqrt(v) + tf.cast(self.epsilon, dtype))
            if self._decay_flags[index]:
                update += tf.cast(self.weight_decay_rate, dtype) * variable
            self.assign_sub(variable, lr * update)
        if tf.inside_function():
            # reading the variable orders after its assignment (automatic control deps)
            self._update_chain = (tf.compat.v1.get_default_graph(),
                                  tf.convert_to_tensor(variable))

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update({
            "weight_decay_rate": self.weight_decay_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "exclude_from_weight_decay": list(self.exclude_patterns),
            "include_in_weight_decay": list(self.include_patterns),
        })
        return config


def create_optimizer(learning_rate, train_steps, warmup_steps, min_lr_ratio, weight_decay,
                     adam_epsilon, decay_method="poly", variables=None, names=None):
    """Builds the original's schedule and optimizer; returns `(optimizer, schedule)`.

    `weight_decay == 0` gives `keras.optimizers.Adam` (beta 0.9/0.999, bias correction,
    the TF1 AdamOptimizer formula, see the module docstring); `weight_decay > 0` gives
    `AdamWeightDecay`. Call it inside `strategy.scope()`. If `variables` is given the
    optimizer is built on them right away (needed before the first step under
    MirroredStrategy); for AdamW `names` (original checkpoint names, parallel to
    `variables`) is then required.
    """
    schedule = WarmupPolyDecay(learning_rate, train_steps=train_steps,
                               warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio,
                               decay_method=decay_method)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    if not adam_epsilon > 0:
        raise ValueError(f"adam_epsilon must be > 0, got {adam_epsilon}.")
    if names is not None and variables is None:
        raise ValueError("create_optimizer got names= without variables=; pass both.")
    if variables is not None:
        variables = list(variables)
        distributed = any(isinstance(getattr(v, "value", v), tf.distribute.DistributedValues)
                          for v in variables)
        if distributed and not tf.distribute.has_strategy():
            raise ValueError(
                "The variables were created under a tf.distribute strategy; call "
                "create_optimizer inside the same `with strategy.scope():` block.")

    if weight_decay == 0:
        optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.999,
                                          epsilon=adam_epsilon)
        if variables is not None:
            optimizer.build(variables)
    else:
        if variables is not None and names is None:
            raise ValueError(
                "weight_decay > 0 needs names= (original checkpoint names parallel to "
                "variables=) to decide which variables are decayed.")
        optimizer = AdamWeightDecay(learning_rate=schedule, weight_decay_rate=weight_decay,
                                    beta_1=0.9, beta_2=0.999, epsilon=adam_epsilon)
        if variables is not None:
            optimizer.build(variables, names=names)
    return optimizer, schedule


# --------------------------------------------------------------------------------------
# Gradient post-processing: clipping and layer-wise decay
# --------------------------------------------------------------------------------------


def clip_by_global_norm(grads, clip):
    """Clips `grads` to global norm `clip`; returns `(clipped, gnorm)`.

    `gnorm` is the norm *before* clipping (what the original logs as `gnorm`). None
    gradients pass through. `clip=None` only measures the norm.
    """
    grads = list(grads)
    if clip is None:
        return grads, tf.linalg.global_norm([g for g in grads if g is not None])
    if not clip > 0:
        raise ValueError(f"clip must be > 0 (or None for no clipping), got {clip}.")
    clipped, gnorm = tf.clip_by_global_norm(grads, clip)
    return list(clipped), gnorm


def layerwise_decay_scales(names, n_layer, rate):
    """Gradient multipliers for the original's `lr_layer_decay_rate`.

    A variable whose original name contains `model/transformer/layer_{l}/` gets
    `rate ** (n_layer - 1 - l)` (the top layer 1.0, the bottom `rate ** (n_layer - 1)`);
    every other variable — word embedding, `r_w_bias`/`r_r_bias`/`r_s_bias`, `seg_embed`,
    `mask_emb`, LM / summary / task heads — gets 1.0, as in the original
    (zihangdai/xlnet#184).

    The original scales *gradients*, not step sizes. Adam's update m/(sqrt(v)+eps) is
    invariant to a constant rescaling of a variable's gradients up to eps, so this is
    much weaker than a true per-layer learning rate: it only changes the update where
    |g| is comparable to epsilon. We reproduce the original; a per-layer learning rate
    would be a different algorithm.

    Args:
      names: original checkpoint names, parallel to the gradients.
      n_layer: number of transformer layers, or None to infer it as the largest
        `layer_{l}` index + 1 (the original infers it from the variable names).
      rate: the decay rate; 1.0 disables the scaling.

    Returns:
      A list of Python floats, one per name.
    """
    names = list(names)
    layers = []
    for name in names:
        match = _LAYER_NAME_RE.search(name)
        layers.append(int(match.group(1)) if match else None)
    if n_layer is None:
        n_layer = max((l for l in layers if l is not None), default=-1) + 1
    if not rate > 0:
        raise ValueError(f"lr_layer_decay_rate must be > 0, got {rate}.")
    scales = []
    for name, layer in zip(names, layers):
        if layer is None:
            scales.append(1.0)
            continue
        if layer >= n_layer:
            raise ValueError(
                f"Variable {name!r} belongs to layer {layer} but n_layer is {n_layer}; "
                "pass the model's n_layer (or None to infer it from the names).")
        scales.append(float(rate) ** (n_layer - 1 - layer))
    return scales


def apply_layerwise_decay(grads, scales):
    """Multiplies each gradient by its scale (after clipping, as the original).

    None gradients pass through; scale 1.0 returns the gradient untouched;
    `tf.IndexedSlices` stay sparse.
    """
    grads = list(grads)
    scales = list(scales)
    if len(grads) != len(scales):
        raise ValueError(f"Got {len(grads)} gradients but {len(scales)} layer-wise scales.")
    out = []
    for grad, scale in zip(grads, scales):
        if grad is None or scale == 1.0:
            out.append(grad)
        elif isinstance(grad, tf.IndexedSlices):
            out.append(tf.IndexedSlices(grad.values * tf.cast(scale, grad.values.dtype),
                                        grad.indices, grad.dense_shape))
        else:
            out.append(grad * tf.cast(scale, grad.dtype))
    return out
