"""Sentence and token embeddings from an XLNet checkpoint.

    python -m xlnet_tf.extract_features --init_checkpoint=xlnet_model.ckpt \\
        --spiece_model=spiece.model --input_file=texts.txt --output_file=out.jsonl \\
        --layers=-1,-2 --pooling=mean

One text per line of ``--input_file``.  Each text is packed as a single-segment
fine-tuning input (``text <sep> <cls>``, segment ids A A .. A CLS, left padding masked out
of attention) and read by the backbone with dropout off.  ``--layers``: which hidden states
(-1 = the last layer's output, -2 the one before, ..., 0 = the word embeddings; several are
concatenated in the order given).  ``--pooling``:

* ``none``: one vector per SentencePiece piece of the text (the pieces are written beside
  them; ``<sep>``/``<cls>`` are not part of the text);
* ``mean``: the mean over the text's pieces (padding and ``<sep>``/``<cls>`` excluded);
* ``last``: the state at ``<cls>``, the last position (what XLNet's classifier summarises:
  the original's ``summary_type=last``);
* ``first``: the state of the text's first piece.

Because XLNet's attention is relative and padding is masked out as keys, a text's vectors
do not depend on how much padding its batch needed or on the other texts in the batch
(tested to 1e-5).  Output: ``.jsonl`` (one object per text: ``index``, ``text``, and
``embedding``, or ``pieces`` + ``vectors`` for ``--pooling=none``) or ``.npz``
(``embeddings [N, D]``; for ``none``: ``vectors [sum of pieces, D]`` with ``offsets
[N + 1]`` and ``pieces``).  The library call is :func:`load_encoder` +
:meth:`Encoder.encode`.
"""
import json
import logging
import os
import time

import numpy as np
from absl import flags

from xlnet_tf import cli
from xlnet_tf import io as io_lib
from xlnet_tf import progress as progress_lib

log = logging.getLogger("xlnet_tf")

POOLINGS = ("none", "mean", "last", "first")
# sequence lengths are rounded up to a multiple of this, so one traced graph serves many
# batches (the backbone needs a static length)
LENGTH_BUCKET = 32


def _bucket(n, max_len):
    return min(max_len, -(-n // LENGTH_BUCKET) * LENGTH_BUCKET)


class Encoder:
    """The backbone of ``config`` with dropout off, reading single texts.

    Args:
      model: an XLNetModel (its config's ``mem_len`` must cover ``max_seq_length`` so the
        inner layers' states come back as its ``new_mems``; :func:`load_encoder` builds it
        so).
      tokenizer: :class:`xlnet_tf.tokenization.Tokenizer`.
      max_seq_length: texts longer than ``max_seq_length - 2`` pieces keep their first
        pieces (logged).
    """

    def __init__(self, model, tokenizer, max_seq_length=512):
        import tensorflow as tf
        self.model, self.tokenizer = model, tokenizer
        self.max_seq_length = int(max_seq_length)
        self.n_layer = model.xlnet_config.n_layer
        self._call = tf.function(lambda inputs: model(inputs, training=False))
        self.truncated = 0

    def _layer_states(self, out, layers):
        """[B, T, D] for the requested layers (concatenated)."""
        states = []
        for layer in layers:
            k = layer if layer >= 0 else self.n_layer + 1 + layer   # 0..n_layer
            states.append(out["hidden"] if k == self.n_layer else out["new_mems"][k])
        return np.concatenate([np.asarray(s, np.float32) for s in states], axis=-1)

    def check_layers(self, layers):
        bad = [x for x in layers if not -(self.n_layer + 1) <= x <= self.n_layer]
        if bad:
            raise ValueError(f"--layers {bad} out of range: the model has {self.n_layer} "
                             f"layers (use -1 .. -{self.n_layer + 1} or 0 .. {self.n_layer})")
        return [int(x) for x in layers]

    def pack(self, texts):
        """Packed inputs for ``texts`` (one batch): dict of arrays [B, T] and the number of
        text pieces of each text."""
        from xlnet_tf.classification.features import pack_ids
        ids = [self.tokenizer.encode_ids(t) for t in texts]
        budget = self.max_seq_length - 2
        self.truncated += sum(len(x) > budget for x in ids)
        ids = [x[:budget] for x in ids]
        T = _bucket(max(len(x) for x in ids) + 2, self.max_seq_length)
        packed = [pack_ids(x, None, T) for x in ids]
        batch = {"input_ids": np.array([p[0] for p in packed], np.int32),
                 "input_mask": np.array([p[1] for p in packed], np.float32),
                 "seg_ids": np.array([p[2] for p in packed], np.int32)}
        return batch, ids

    def encode(self, texts, layers=(-1,), pooling="mean", batch_size=32, progress=None):
        """Embeddings of ``texts`` (a list of str).

        Returns for ``pooling="none"`` a list of (pieces, float32 [n_pieces, D]) per text,
        else float32 [N, D]; D = d_model x len(layers)."""
        if pooling not in POOLINGS:
            raise ValueError(f"--pooling={pooling!r}: use one of {', '.join(POOLINGS)}")
        layers = self.check_layers(layers)
        results = []
        # similar lengths share a batch (less padding); the order is restored at the end
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        by_index = {}
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch, ids = self.pack([texts[i] for i in chunk])
            states = self._layer_states(self._call(batch), layers)          # [B, T, D]
            T = states.shape[1]
            for row, (i, x) in enumerate(zip(chunk, ids)):
                n = len(x)
                text_states = states[row, T - 2 - n:T - 2]                   # [n, D]
                if pooling == "none":
                    by_index[i] = ([self.tokenizer.id_to_piece(t) for t in x], text_states)
                elif pooling == "mean":
                    by_index[i] = (text_states.mean(0) if n else
                                   np.zeros(states.shape[-1], np.float32))
                elif pooling == "last":
                    by_index[i] = states[row, T - 1]
                else:
                    by_index[i] = text_states[0] if n else states[row, T - 1]
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
        results = [by_index[i] for i in range(len(texts))]
        return results if pooling == "none" else np.stack(results).astype(np.float32)


def load_encoder(init_checkpoint, spiece_model, model_config=None, uncased=False,
                 max_seq_length=512):
    """An :class:`Encoder` from a checkpoint in any of the three formats (the original's,
    Hugging Face weights, ours).  ``model_config`` defaults to the ``xlnet_config.json``
    beside the checkpoint."""
    from xlnet_tf import finetuning
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.modeling.model import XLNetModel
    from xlnet_tf.training import init_from_checkpoint

    if not model_config:
        folder = init_checkpoint if os.path.isdir(init_checkpoint) else \
            os.path.dirname(os.path.abspath(init_checkpoint))
        model_config = os.path.join(folder, "xlnet_config.json")
        if not os.path.isfile(model_config):
            raise FileNotFoundError(f"no --model_config given and no xlnet_config.json beside "
                                    f"--init_checkpoint {init_checkpoint!r}; pass --model_config")
    tokenizer = finetuning.load_tokenizer(spiece_model, uncased)
    config = finetuning.finetune_config(XLNetConfig.from_json(model_config)).replace(
        dropout=0.0, dropatt=0.0, mem_len=int(max_seq_length))
    if config.n_token < tokenizer.vocab_size:
        raise ValueError(f"the model has n_token={config.n_token} but --spiece_model "
                         f"{spiece_model!r} has {tokenizer.vocab_size} pieces; use the "
                         f"SentencePiece model of the checkpoint")
    model = XLNetModel(config, name="transformer")
    init_from_checkpoint(model, init_checkpoint)
    return Encoder(model, tokenizer, max_seq_length)


# --------------------------------------------------------------------------- command line
def define_flags(fv):
    def define(kind, name, default, help_text, *enum_values):
        getattr(flags, f"DEFINE_{kind}")(name, default, *enum_values, help_text, flag_values=fv)

    define("string", "init_checkpoint", None, "Checkpoint: the original's, Hugging Face "
           "weights or ours.")
    define("string", "spiece_model", None, "SentencePiece model of the checkpoint.")
    define("string", "model_config", None, "xlnet_config.json (default: beside the "
           "checkpoint).")
    define("bool", "uncased", False, "Lower-case text (uncased vocabulary).")
    define("string", "input_file", None, "Texts, one per line (UTF-8).")
    define("string", "output_file", None, "out.jsonl or out.npz.")
    define("list", "layers", ["-1"], "Hidden states to return, concatenated: -1 = last "
           "layer, 0 = word embeddings.")
    define("enum", "pooling", "mean", "none: per piece; mean/last/first: one vector per "
           "text.", list(POOLINGS))
    define("integer", "max_seq_length", 512, "Longest packed input (text + <sep> <cls>).")
    define("integer", "batch_size", 32, "Texts per batch.")


def _write(path, texts, results, pooling):
    if path.endswith(".npz"):
        with io_lib.atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                if pooling == "none":
                    offsets = np.cumsum([0] + [len(p) for p, _ in results])
                    np.savez(f, vectors=np.concatenate([v for _, v in results], 0),
                             offsets=offsets, pieces=np.array(
                                 [p for ps, _ in results for p in ps], dtype=str))
                else:
                    np.savez(f, embeddings=results)
        return
    with io_lib.atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for i, (text, r) in enumerate(zip(texts, results)):
                row = {"index": i, "text": text}
                if pooling == "none":
                    row.update(pieces=r[0], vectors=np.round(r[1], 6).tolist())
                else:
                    row["embedding"] = np.round(r, 6).tolist()
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(F):
    cli.setup_logging()
    for name in ("init_checkpoint", "spiece_model", "input_file", "output_file"):
        if not F[name].value:
            cli.fail(f"--{name} is required")
    if not F.output_file.endswith((".jsonl", ".npz")):
        cli.fail(f"--output_file={F.output_file!r}: name it .jsonl or .npz")
    try:
        layers = [int(x) for x in F.layers]
    except ValueError:
        cli.fail(f"--layers={','.join(F.layers)}: give whole numbers such as -1,-2")
    if F.batch_size <= 0 or F.max_seq_length < 3:
        cli.fail("--batch_size must be > 0 and --max_seq_length >= 3")
    io_lib.check_text_file(F.input_file, "--input_file")
    from xlnet_tf.finetuning import check_writable_file
    check_writable_file(F.output_file, "output_file")
    with open(F.input_file, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    if not texts:
        cli.fail(f"--input_file {F.input_file!r} holds no text")
    encoder = load_encoder(F.init_checkpoint, F.spiece_model, F.model_config, F.uncased,
                           F.max_seq_length)
    encoder.check_layers(layers)
    t0 = time.time()
    last = [t0]

    def progress(done, total):
        now = time.time()
        if now - last[0] >= 10 or done == total:
            last[0] = now
            rate = done / max(now - t0, 1e-9)
            print(f"{done:,}/{total:,} texts | {rate:.1f} texts/s | ETA "
                  f"{progress_lib.eta(done, total, now - t0)}", flush=True)

    results = encoder.encode(texts, layers, F.pooling, F.batch_size, progress)
    _write(F.output_file, texts, results, F.pooling)
    if encoder.truncated:
        print(f"{encoder.truncated} text(s) longer than --max_seq_length={F.max_seq_length} "
              f"kept their first pieces", flush=True)
    print(f"wrote {F.output_file}: {len(texts):,} texts, pooling {F.pooling}, layers "
          f"{','.join(map(str, layers))}", flush=True)


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__)


if __name__ == "__main__":
    entry()
