"""Linear probe: do a pretrained backbone's frozen features know more about a task than a
randomly initialised one's?  A diagnostic for the transfer experiment (when fine-tuning
from a pretraining checkpoint does not beat training from scratch, this separates "the
pretraining learnt nothing useful" from "fine-tuning does not use what it learnt").

For each checkpoint (and a random initialisation of the same config) the backbone reads the
sentences of a GLUE single-sentence task without gradient, as fine-tuning reads them (no
memory, bidirectional, dropout off); two features per sentence: the mean of the word
embeddings of its pieces (what the embedding table knows) and the mean of the last layer's
states over its pieces (what the whole network knows).  A logistic regression (L2, Newton
steps, numpy) is trained on N training sentences and scored on the dev set.

    python -m xlnet_tf.experiments.probe --spiece_model=WORK/pretrain_data/spiece.model \\
        --model_config=WORK/model_config.json --uncased --data_dir=DATA/glue/SST-2 \\
        --checkpoints=WORK/pretrain/plm/ckpt-500,WORK/pretrain/plm/ckpt-1800 \\
        --results=experiments/transfer/probe.json
"""
import json
import os
import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("spiece_model", None, "The SentencePiece model the checkpoints use.")
flags.DEFINE_string("model_config", None, "xlnet_config.json of the checkpoints.")
flags.DEFINE_bool("uncased", False, "Lower-case the text (an uncased vocabulary).")
flags.DEFINE_string("data_dir", None, "A GLUE single-sentence task folder (train.tsv, dev.tsv).")
flags.DEFINE_string("task", "sst-2", "The task's name (its reader).")
flags.DEFINE_list("checkpoints", [], "Checkpoints to probe (ckpt-N or xlnet_model.ckpt).")
flags.DEFINE_integer("num_train", 4000, "Training sentences of the probe.")
flags.DEFINE_integer("max_seq_length", 64, "Sequence length.")
flags.DEFINE_float("l2", 1e-2, "L2 penalty of the logistic regression (on standardised features).")
flags.DEFINE_integer("seed", 0, "Seed of the random initialisation and the training sample.")
flags.DEFINE_string("results", None, "Write the results here (JSON).")


def logistic_regression(x, y, l2, steps=25):
    """Weights of an L2-penalised logistic regression by Newton's method (x has a bias column)."""
    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[-1, -1] = 0.0                       # no penalty on the bias
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) / len(y) + reg @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(y) + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def probe_accuracy(train_x, train_y, dev_x, dev_y, l2):
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    add_bias = lambda a: np.concatenate([(a - mean) / std, np.ones((len(a), 1))], 1)  # noqa: E731
    w = logistic_regression(add_bias(train_x), train_y.astype(np.float64), l2)
    return float(np.mean(((add_bias(dev_x) @ w) > 0) == dev_y))


def features(model, preprocessor, texts, batch_size=128):
    """(mean word embedding, mean last-layer state) over each text's pieces."""
    import tensorflow as tf
    emb, top = [], []
    for i in range(0, len(texts), batch_size):
        inputs = preprocessor(tf.constant(texts[i:i + batch_size]))
        out = model(inputs, training=False)
        keep = tf.cast(inputs["input_ids"] != 0, tf.float32) * (1.0 - inputs["input_mask"])
        keep = keep[..., None]                                 # the pieces and <sep> <cls>
        n = tf.reduce_sum(keep, 1)
        word = tf.gather(model.word_embedding, inputs["input_ids"])
        emb.append((tf.reduce_sum(word * keep, 1) / n).numpy())
        top.append((tf.reduce_sum(out["hidden"] * keep, 1) / n).numpy())
    return np.concatenate(emb), np.concatenate(top)


def main(argv):
    del argv
    import keras

    from xlnet_tf import XLNetConfig
    from xlnet_tf.classification.readers import get_task
    from xlnet_tf.finetuning import finetune_config
    from xlnet_tf.modeling.model import XLNetModel
    from xlnet_tf.preprocessing import XLNetPreprocessor
    from xlnet_tf.training import init_from_checkpoint

    for name in ("spiece_model", "model_config", "data_dir"):
        if not getattr(FLAGS, name):
            sys.exit(f"--{name} is required")
    task = get_task(FLAGS.task)
    train = task.get_examples(FLAGS.data_dir, "train")
    dev = task.get_examples(FLAGS.data_dir, "dev")
    rng = np.random.default_rng(FLAGS.seed)
    train = [train[i] for i in rng.permutation(len(train))[:FLAGS.num_train]]
    label_ids = {label: i for i, label in enumerate(task.get_labels())}
    train_y = np.array([label_ids[e.label] for e in train])
    dev_y = np.array([label_ids[e.label] for e in dev])
    pre = XLNetPreprocessor(FLAGS.spiece_model, sequence_length=FLAGS.max_seq_length,
                            lower=FLAGS.uncased, task_name=FLAGS.task)
    config = finetune_config(XLNetConfig.from_json(FLAGS.model_config))
    majority = max(np.mean(dev_y == c) for c in range(len(task.get_labels())))
    results = {"task": FLAGS.task, "num_train": len(train), "num_dev": len(dev),
               "majority": float(majority), "l2": FLAGS.l2, "probes": []}
    for ckpt in ["random"] + FLAGS.checkpoints:
        keras.utils.set_random_seed(FLAGS.seed)
        model = XLNetModel(config)
        model(pre(["a"]))
        if ckpt != "random":
            init_from_checkpoint(model, ckpt)
        start = time.time()
        tr_emb, tr_top = features(model, pre, [e.text_a for e in train])
        dv_emb, dv_top = features(model, pre, [e.text_a for e in dev])
        row = {"checkpoint": ckpt,
               "embedding_probe": probe_accuracy(tr_emb, train_y, dv_emb, dev_y, FLAGS.l2),
               "last_layer_probe": probe_accuracy(tr_top, train_y, dv_top, dev_y, FLAGS.l2),
               "seconds": round(time.time() - start, 1)}
        print(json.dumps(row), flush=True)
        results["probes"].append(row)
    if FLAGS.results:
        tmp = FLAGS.results + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, FLAGS.results)


if __name__ == "__main__":
    app.run(main)
