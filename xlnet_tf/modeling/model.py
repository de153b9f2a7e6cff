"""The XLNet backbone (``XLNetModel``) and the pretraining model with its tied LM head
(``XLNetLMModel``).

Public contract (batch-major; masks in the ORIGINAL convention, 1 = blocked/padding):

    out = model({"input_ids": [B, T] int32,
                 "seg_ids": [B, T] int32,                    # optional (no segment term)
                 "input_mask": [B, T] float, 1 = padding,    # optional; [B, M+T] with mems
                 "perm_mask": [B, T, T] float, 1 = i may NOT attend j,   # optional
                 "target_mapping": [B, P, T] float one-hot rows,        # optional
                 "inp_q": [B, T] float, 1 = predicted position,        # optional
                 "mems": [n_layer x [B, M, d]],              # optional
                 "mem_mask": [B, M] float, 1 = empty memory slot},      # optional
                training=False)
    out = {"hidden": [B, T, d],            # content stream output
           "query_hidden": [B, P|T, d],    # query stream output, when it runs
           "new_mems": [n_layer x [B, <=mem_len, d]] float32 (empty list without memory),
           "logits": [B, P|T, n_token] float32}   # XLNetLMModel only

The query stream runs when ``target_mapping`` or ``inp_q`` is given.  With
``target_mapping`` it starts from ``mask_emb`` tiled to P slots (each slot attends from the
position its one-hot row names; an all-zero row is a padding slot); with only ``inp_q`` it
runs over all T positions from ``inp_q * mask_emb + (1 - inp_q) * word_emb``.
"""
import functools

import keras
import tensorflow as tf

from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.modeling.layers import XLNetLayer, initializer, relative_positional_encoding
from xlnet_tf.modeling.masks import attention_masks, segment_mismatch
from xlnet_tf.modeling.ops import dims, dropout, fold_seed, recompute_layer

# Query rows per attention block in recompute mode (2 blocks at 512 tokens: more blocks
# lower the activation peak a little but add graph ops, which cost more host memory).
DEFAULT_QUERY_CHUNK = 256

INPUT_KEYS = ("input_ids", "seg_ids", "input_mask", "perm_mask", "target_mapping", "inp_q",
              "mems", "mem_mask")


def cache_mem(curr_out, prev_mem, mem_len, reuse_len=None):
    """Transformer-XL memory of one layer (the original's ``_cache_mem``): the layer INPUT, first `reuse_len`
    positions only, last `mem_len` positions kept, no gradient.  [B, M', d] float32."""
    if not mem_len:
        return None
    if reuse_len:
        curr_out = curr_out[:, :reuse_len]                                   # [B, reuse, d]
    curr_out = tf.cast(curr_out, tf.float32)
    new_mem = curr_out if prev_mem is None else tf.concat(
        [tf.cast(prev_mem, tf.float32), curr_out], axis=1)                   # [B, M+T', d]
    return tf.stop_gradient(new_mem[:, -mem_len:])                           # [B, <=mem_len, d]


def read_segments(model, inputs, seg_len, training=False):
    """Reads a long input as consecutive segments of ``seg_len`` carrying Transformer-XL
    memory (the original's recurrence over segments, as in its pretraining input).

    Args:
      model: an ``XLNetModel`` whose config has ``mem_len`` >= 1 (the memory kept).
      inputs: ``input_ids`` [B, S*T] int32, optional ``seg_ids`` [B, S*T] and ``input_mask``
        [B, S*T] float (1 = padding); T = ``seg_len``, S a static number of segments.
      seg_len: T, a python int dividing the static length; or a sequence of python ints,
        the lengths of the segments in order (summing to the static length), e.g. a
        document context of N positions then a window of T: ``(N, T)``.
    Returns:
      ``(hidden [B, T, d] of the LAST segment, its input_mask [B, T] or None)``.

    The padding of an earlier segment stays blocked once it is in the memory (the backbone
    takes an ``input_mask`` over memory + segment).  With ``mem_len`` >= the positions before
    the last segment ((S - 1) * T), the last segment's states are exactly those of one
    forward over all positions in which each
    segment attends to itself and to every earlier segment (a block-causal ``perm_mask``);
    a shorter memory sees only its last ``mem_len`` positions, layer by layer.  Memory
    segment ids count as segment 0 (as in the original), so inputs whose earlier segments
    hold a second text (segment id 1) are not read exactly.  No gradient flows through the
    memory (``cache_mem``).  A segment that is padding in every row of the batch (a short
    document's leading segments) is not computed: its memory is zeros, blocked by the mask.
    """
    mem_len = model.xlnet_config.mem_len
    if not mem_len:
        raise ValueError("read_segments needs a backbone with mem_len >= 1 (its config has "
                         f"mem_len={mem_len!r})")
    ids = inputs["input_ids"]
    total = _static_dim(ids, 1)
    lengths = segment_lengths(total, seg_len)
    mask = inputs.get("input_mask")
    mask = None if mask is None else tf.cast(mask, tf.float32)               # [B, S*T]
    seg_ids = inputs.get("seg_ids")
    mems, mem_mask, out = None, None, None
    starts = [sum(lengths[:s]) for s in range(len(lengths))]
    for s, (start, T) in enumerate(zip(starts, lengths)):
        part = slice(start, start + T)
        feats = {"input_ids": ids[:, part]}                                  # [B, T]
        if seg_ids is not None:
            feats["seg_ids"] = seg_ids[:, part]                              # [B, T]
        seg_mask = None if mask is None else mask[:, part]                   # [B, T]
        if seg_mask is not None:
            feats["input_mask"] = seg_mask if mem_mask is None else tf.concat(
                [mem_mask, seg_mask], axis=1)                                # [B, M+T]
        if mems is not None:
            feats["mems"] = mems                                             # n_layer x [B, M, d]
        if seg_mask is not None and s < len(lengths) - 1:
            # a segment that is padding in every row adds only blocked memory: skip its
            # forward, its memory is zeros (blocked by the mask as the computed one would be)
            mems = tf.cond(tf.reduce_all(seg_mask > 0.5),
                           functools.partial(_blank_mems, model, mems, dims(ids)[0], T),
                           functools.partial(_segment_mems, model, feats, training))
        else:
            out = model(feats, training=training)
            mems = out["new_mems"]
        if seg_mask is not None:
            # the memory keeps the last mem_len positions of [memory, segment]: so does its mask
            mem_mask = (seg_mask if mem_mask is None else
                        tf.concat([mem_mask, seg_mask], axis=1))[:, -mem_len:]  # [B, M']
        last_mask = seg_mask
    return out["hidden"], last_mask


def segment_lengths(total, seg_len):
    """The segment lengths of ``read_segments``: ``seg_len`` (an int dividing ``total``, or
    the lengths themselves, checked to sum to ``total``)."""
    if isinstance(seg_len, (list, tuple)):
        lengths = [int(n) for n in seg_len]
        if total is None or sum(lengths) != total or min(lengths, default=0) < 1:
            raise ValueError(f"read_segments: segment lengths {lengths} do not add up to the "
                             f"input length {total}")
        return lengths
    T = int(seg_len)
    if total is None or total % T:
        raise ValueError(f"read_segments: the input length {total} is not a multiple of the "
                         f"segment length {T}")
    return [T] * (total // T)


def _segment_mems(model, feats, training):
    return list(model(feats, training=training)["new_mems"])


def _blank_mems(model, mems, batch, seg_len):
    """The memory after a segment of padding only: zeros appended, the last mem_len kept."""
    c = model.xlnet_config
    zeros = tf.zeros([batch, seg_len, c.d_model], tf.float32)                # [B, T, d]
    return [(zeros if m is None else tf.concat([tf.cast(m, tf.float32), zeros], axis=1))
            [:, -c.mem_len:] for m in (mems or [None] * c.n_layer)]         # [B, M', d]


def _static_dim(x, axis):
    return x.shape[axis] if x.shape.rank is not None else None


def validate_inputs(inputs, config):
    """Clear errors for malformed inputs, before anything reaches TensorFlow kernels."""
    if not isinstance(inputs, dict):
        raise TypeError(f"XLNet models take a dict of inputs with keys {INPUT_KEYS}, got "
                        f"{type(inputs).__name__}")
    unknown = sorted(set(inputs) - set(INPUT_KEYS))
    if unknown:
        raise ValueError(f"unknown input keys {unknown}; expected some of {INPUT_KEYS}")
    if "input_ids" not in inputs:
        raise ValueError("inputs must contain 'input_ids' [B, T]")
    ids = inputs["input_ids"]
    if ids.shape.rank != 2:
        raise ValueError(f"input_ids must be [B, T], got shape {ids.shape}")
    b, t = ids.shape[0], ids.shape[1]

    def check(name, expected):
        x = inputs.get(name)
        if x is None:
            return
        shape = list(x.shape)
        ok = len(shape) == len(expected) and all(
            e is None or s is None or s == e for s, e in zip(shape, expected))
        if not ok:
            raise ValueError(f"{name} has shape {shape} but input_ids is [{b}, {t}]: {name} "
                             f"must be {['B' if e == b and i == 0 else e for i, e in enumerate(expected)]}")

    check("seg_ids", [b, t])
    mems = inputs.get("mems")
    mem_width = None
    if mems is not None and len(mems) > 0 and mems[0] is not None and mems[0].shape.rank == 3:
        mem_width = mems[0].shape[1]
    im = inputs.get("input_mask")
    if im is not None and mem_width and t is not None and im.shape.rank == 2 \
            and im.shape[1] == mem_width + t:
        check("input_mask", [b, mem_width + t])                  # a mask over memory + segment
    else:
        check("input_mask", [b, t])
    check("inp_q", [b, t])
    check("perm_mask", [b, t, t])
    tm = inputs.get("target_mapping")
    if tm is not None:
        check("target_mapping", [b, None, t])
    if mems is not None and len(mems) > 0:
        if len(mems) != config.n_layer:
            raise ValueError(f"mems must be a list of n_layer={config.n_layer} tensors "
                             f"[B, M, d_model], got {len(mems)}")
        for i, m in enumerate(mems):
            if m is None:
                continue
            if m.shape.rank != 3 or (m.shape[-1] is not None and m.shape[-1] != config.d_model) \
                    or (b is not None and m.shape[0] is not None and m.shape[0] != b):
                raise ValueError(f"mems[{i}] has shape {m.shape}; expected [B={b}, M, "
                                 f"d_model={config.d_model}]")
            if m.shape[1] is None:
                raise ValueError(f"mems[{i}] must have a static memory length")
    mem_mask = inputs.get("mem_mask")
    if mem_mask is not None:
        mlen = mems[0].shape[1] if mems is not None and len(mems) and mems[0] is not None \
            else None
        if mlen is None:
            raise ValueError("mem_mask [B, M] was given without mems")
        check("mem_mask", [b, mlen])
    if config.bi_data and b is not None and b % 2:
        raise ValueError(f"bi_data=True needs an even batch size (first half forward, second "
                         f"half backward), got batch size {b}")


def _get_config(model):
    return {"name": model.name, "config": model.xlnet_config.to_dict(),
            "dtype": model.dtype_policy.name, "query_chunk": model.query_chunk}


def model_from_config(cls, cfg):
    """Keras from_config for the models of this package: {"config": XLNetConfig dict, ...}."""
    cfg = dict(cfg)
    return cls(XLNetConfig.from_dict(cfg.pop("config")), **cfg)


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetModel(keras.Model):
    """The XLNet backbone (variable scope ``model/transformer`` in the original).

    ``query_chunk``: with ``config.recompute``, the content-stream attention is computed in
    blocks of this many query rows, each recomputed in the backward pass (None = all rows
    at once); without recompute it has no effect.
    """

    def __init__(self, config, query_chunk=DEFAULT_QUERY_CHUNK, **kwargs):
        kwargs.setdefault("name", "transformer")
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = XLNetConfig.from_dict(config)
        self.xlnet_config = config
        self.query_chunk = query_chunk
        init = initializer(config)
        self._init = init
        self.blocks = [
            XLNetLayer(config.d_model, config.n_head, config.d_head, config.d_inner,
                       config.ff_activation, config.dropout, config.dropatt, init,
                       query_chunk if config.recompute else None,
                       name=f"layer_{i}", dtype=self.dtype_policy)
            for i in range(config.n_layer)]
        for i, block in enumerate(self.blocks):
            # attributes (not only a list) so tf.train.Checkpoint tracks every block
            setattr(self, f"layer_{i}", block)
        # one draw per training call; every dropout mask derives from it (stateless), so the
        # checkpointed generator state reproduces the masks and recompute re-draws them exactly
        self.seed_generator = keras.random.SeedGenerator()
        self.build()

    def build(self, input_shape=None):
        c = self.xlnet_config
        init = self._init
        bias_shape = (c.n_layer, c.n_head, c.d_head) if c.untie_r else (c.n_head, c.d_head)
        self.word_embedding = self.add_weight(name="lookup_table",
                                              shape=(c.n_token, c.d_model), initializer=init,
                                              autocast=False)
        # the original creates mask_emb without an initializer: TF1's default Glorot-uniform
        self.mask_emb = self.add_weight(name="mask_emb", shape=(1, 1, c.d_model),
                                        initializer="glorot_uniform", autocast=False)
        self.r_w_bias = self.add_weight(name="r_w_bias", shape=bias_shape, initializer=init,
                                        autocast=False)
        self.r_r_bias = self.add_weight(name="r_r_bias", shape=bias_shape, initializer=init,
                                        autocast=False)
        self.r_s_bias = self.add_weight(name="r_s_bias", shape=bias_shape, initializer=init,
                                        autocast=False)
        self.seg_embed = self.add_weight(name="seg_embed",
                                         shape=(c.n_layer, 2, c.n_head, c.d_head),
                                         initializer=init, autocast=False)
        for block in self.blocks:
            block.build()
        self.built = True

    def get_config(self):
        return _get_config(self)

    @classmethod
    def from_config(cls, cfg):
        return model_from_config(cls, cfg)

    # ------------------------------------------------------------------ naming
    def original_name_map(self, prefix="model/transformer", include_mask_emb=True):
        """{original TF1 variable name: variable} for every backbone weight.  Fine-tuning
        models pass ``include_mask_emb=False``: the original's fine-tuning graphs have no
        mask_emb (it only feeds the pretraining query stream)."""
        names = {
            f"{prefix}/word_embedding/lookup_table": self.word_embedding,
            f"{prefix}/mask_emb/mask_emb": self.mask_emb,
            f"{prefix}/r_w_bias": self.r_w_bias,
            f"{prefix}/r_r_bias": self.r_r_bias,
            f"{prefix}/r_s_bias": self.r_s_bias,
            f"{prefix}/seg_embed": self.seg_embed,
        }
        if not include_mask_emb:
            del names[f"{prefix}/mask_emb/mask_emb"]
        for i, block in enumerate(self.blocks):
            p = f"{prefix}/layer_{i}"
            a, f = block.rel_attn, block.ff
            for k in ("q", "k", "v", "r", "o"):
                names[f"{p}/rel_attn/{k}/kernel"] = getattr(a, f"{k}_kernel")
            names[f"{p}/rel_attn/LayerNorm/gamma"] = a.layer_norm.gamma
            names[f"{p}/rel_attn/LayerNorm/beta"] = a.layer_norm.beta
            names[f"{p}/ff/layer_1/kernel"] = f.kernel_1
            names[f"{p}/ff/layer_1/bias"] = f.bias_1
            names[f"{p}/ff/layer_2/kernel"] = f.kernel_2
            names[f"{p}/ff/layer_2/bias"] = f.bias_2
            names[f"{p}/ff/LayerNorm/gamma"] = f.layer_norm.gamma
            names[f"{p}/ff/LayerNorm/beta"] = f.layer_norm.beta
        return names

    def _layer_biases(self, i):
        c = self.xlnet_config
        if c.untie_r:
            return self.r_w_bias[i], self.r_r_bias[i], self.r_s_bias[i], self.seg_embed[i]
        return self.r_w_bias, self.r_r_bias, self.r_s_bias, self.seg_embed[i]

    # ------------------------------------------------------------------ forward
    def call(self, inputs, training=False):
        c = self.xlnet_config
        validate_inputs(inputs, c)
        training = bool(training)
        dt = self.compute_dtype
        input_ids = tf.cast(inputs["input_ids"], tf.int32)                   # [B, T]
        seg_ids = inputs.get("seg_ids")
        target_mapping = inputs.get("target_mapping")
        inp_q = inputs.get("inp_q")
        mems = inputs.get("mems") or [None] * c.n_layer
        batch = _static_dim(input_ids, 0)
        batch = batch if batch is not None else tf.shape(input_ids)[0]
        qlen = _static_dim(input_ids, 1)
        if qlen is None:
            raise ValueError("input_ids must have a static sequence length")
        mlen = mems[0].shape[1] if mems[0] is not None else 0
        klen = mlen + qlen

        # masks: built once per call, shared by all layers
        content_allowed, query_allowed = attention_masks(
            qlen, mlen, inputs.get("input_mask"), inputs.get("perm_mask"), c.attn_type,
            c.same_length, inputs.get("mem_mask"))                          # [B|1, 1, T|1, K]
        seg_mis = segment_mismatch(seg_ids, mlen) if seg_ids is not None else None  # [B, T, K]

        word_emb_k = tf.cast(tf.gather(self.word_embedding, input_ids), dt)  # [B, T, d]
        mask_emb = tf.cast(self.mask_emb, dt)                                # [1, 1, d]
        g = positions = slot_weight = None
        seg_mis_g, query_allowed_g = seg_mis, query_allowed
        if target_mapping is not None:
            target_mapping = tf.cast(target_mapping, tf.float32)             # [B, P, T]
            num_predict = target_mapping.shape[1]
            positions = tf.argmax(target_mapping, axis=-1, output_type=tf.int32)  # [B, P]
            slot_weight = tf.reduce_sum(target_mapping, axis=-1)             # [B, P]
            g = tf.tile(mask_emb, [batch, num_predict, 1])                   # [B, P, d]
            if seg_mis is not None:
                seg_mis_g = tf.gather(seg_mis, positions, batch_dims=1)      # [B, P, K]
            if query_allowed is not None and query_allowed.shape[2] != 1:
                qa = tf.broadcast_to(query_allowed[:, 0], [batch, qlen, klen])  # [B, T, K]
                query_allowed_g = tf.gather(qa, positions, batch_dims=1)[:, None]  # [B,1,P,K]
        elif inp_q is not None:
            q_flag = tf.cast(inp_q, dt)[:, :, None]                          # [B, T, 1]
            g = q_flag * mask_emb + (1.0 - q_flag) * word_emb_k              # [B, T, d]

        rate = c.dropout
        seed = None
        if training and (c.dropout > 0 or c.dropatt > 0):
            seed = tf.cast(self.seed_generator.next(), tf.int32)            # [2]
        h = dropout(word_emb_k, rate, fold_seed(seed, -1), training)        # [B, T, d]
        if g is not None:
            g = dropout(g, rate, fold_seed(seed, -2), training)              # [B, P|T, d]

        pos_emb = relative_positional_encoding(qlen, klen, c.d_model, c.attn_type, c.bi_data,
                                               c.clamp_len, batch)           # [1|B, R, d]
        pos_emb = tf.cast(pos_emb, dt)
        if training and c.dropout > 0:
            # the original tiles pos_emb over the batch before dropout: one mask per example
            pos_emb = tf.broadcast_to(pos_emb, [batch, dims(pos_emb)[1], c.d_model])
            pos_emb = dropout(pos_emb, rate, fold_seed(seed, -3), training)  # [B, R, d]

        new_mems = []
        for i, block in enumerate(self.blocks):
            if c.mem_len:
                new_mems.append(cache_mem(h, mems[i], c.mem_len, c.reuse_len))
            def args(i=i):
                return (mems[i], pos_emb, self._layer_biases(i), seg_mis, seg_mis_g,
                        content_allowed, query_allowed_g, positions, slot_weight)
            layer_seed = fold_seed(seed, i)
            if training and c.recompute:
                h, g = recompute_layer(block, h, g, args, layer_seed)
            else:
                h, g = block(h, g, *args(), training=training, seed=layer_seed)

        out = {"hidden": dropout(h, rate, fold_seed(seed, -4), training), "new_mems": new_mems}
        if g is not None:
            out["query_hidden"] = dropout(g, rate, fold_seed(seed, -5), training)
        return out


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetLMModel(keras.Model):
    """XLNet with the pretraining head: logits tied to the word embedding plus its own
    bias ``model/lm_loss/bias``.  ``query_chunk``: as for `XLNetModel`."""

    def __init__(self, config, query_chunk=DEFAULT_QUERY_CHUNK, **kwargs):
        kwargs.setdefault("name", "xlnet_lm")
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = XLNetConfig.from_dict(config)
        self.xlnet_config = config
        self.query_chunk = query_chunk
        self.transformer = XLNetModel(config, query_chunk, name="transformer",
                                      dtype=self.dtype_policy)
        self.build()

    def build(self, input_shape=None):
        self.lm_bias = self.add_weight(name="lm_loss_bias", shape=(self.xlnet_config.n_token,),
                                       initializer="zeros", autocast=False)
        self.built = True

    def get_config(self):
        return _get_config(self)

    @classmethod
    def from_config(cls, cfg):
        return model_from_config(cls, cfg)

    def original_name_map(self):
        names = self.transformer.original_name_map()
        names["model/lm_loss/bias"] = self.lm_bias
        return names

    def lm_logits(self, x):
        """The tied LM head: [B, L, d] hidden states -> float32 [B, L, V] logits."""
        table = tf.cast(self.transformer.word_embedding, self.compute_dtype)  # [V, d]
        logits = tf.einsum("bld,vd->blv", x, table)                         # [B, L, V]
        return tf.cast(logits, tf.float32) + tf.convert_to_tensor(self.lm_bias)

    def call(self, inputs, training=False):
        out = dict(self.transformer(inputs, training=training))
        out["logits"] = self.lm_logits(out.get("query_hidden", out["hidden"]))  # [B, P|T, V]
        return out
