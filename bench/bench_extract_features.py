"""Speed of xlnet_tf.extract_features at XLNet-base shape (12 layers, d_model 768, random
weights: speed does not depend on the values) on this CPU: texts/s for mean pooling of the
last layer, texts of about --words words, --batch_size per batch.

    python bench/bench_extract_features.py [--texts 256] [--words 80] [--batch_size 32]
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=256)
    p.add_argument("--words", type=int, default=80)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_seq_length", type=int, default=512)
    a = p.parse_args()
    import numpy as np
    from xlnet_tf.extract_features import Encoder
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.modeling.model import XLNetModel
    from xlnet_tf.tokenization import Tokenizer

    tok = Tokenizer(os.path.join(REPO, "tests", "fixtures", "spiece_test.model"))
    config = XLNetConfig(n_token=32000, n_layer=12, d_model=768, n_head=12, d_head=64,
                         d_inner=3072, dropout=0.0, dropatt=0.0, mem_len=a.max_seq_length)
    model = XLNetModel(config, name="transformer")
    enc = Encoder(model, tok, a.max_seq_length)
    rng = np.random.default_rng(0)
    words = "the film a of and to is was it in that for with as his on be at by this had".split()
    texts = [" ".join(rng.choice(words, a.words)) for _ in range(a.texts)]
    enc.encode(texts[:a.batch_size], batch_size=a.batch_size)          # trace + warm up
    t0 = time.time()
    enc.encode(texts, batch_size=a.batch_size)
    dt = time.time() - t0
    pieces = np.mean([len(tok.encode_ids(t)) for t in texts])
    res = {"texts": a.texts, "pieces_per_text": round(float(pieces), 1),
           "batch_size": a.batch_size, "seconds": round(dt, 2),
           "texts_per_s": round(a.texts / dt, 1)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
