"""New tokens per second of xlnet_tf.generation on this CPU: the cached path (Transformer-XL
memory, one call on two positions per token) against the uncached reference (the whole
sequence recomputed every token), at the XLNet-base shape with random weights, greedy,
batch 1.  The first call (tracing) is excluded for the cached path; the uncached path runs
eagerly (its shapes change every token).

    python bench/bench_generation.py                          # prompts of 32 and 256, 64 new
    python bench/bench_generation.py --prompt_lens 32 --new_tokens 16 --n_layer 2

Also checks that both paths chose the same tokens.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root, for xlnet_tf
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt_lens", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--new_tokens", type=int, default=64)
    ap.add_argument("--n_layer", type=int, default=12)
    ap.add_argument("--d_model", type=int, default=768)
    ap.add_argument("--n_token", type=int, default=32000)
    args = ap.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    import xlnet_tf
    from xlnet_tf.generation.generator import Generator

    class IdTokenizer:
        """Ids only: the benchmark needs no SentencePiece model."""
        vocab_size = args.n_token

        def encode_ids(self, text):
            raise ValueError("the benchmark passes ids")

        def decode(self, ids):
            return " ".join(str(i) for i in ids)

    heads = args.d_model // 64
    cfg = xlnet_tf.XLNetConfig(n_layer=args.n_layer, d_model=args.d_model, n_head=heads,
                               d_head=64, d_inner=4 * args.d_model, n_token=args.n_token,
                               dropout=0.0, dropatt=0.0)
    keras.utils.set_random_seed(0)
    gen = Generator(xlnet_tf.XLNetLMModel(cfg), IdTokenizer())
    rng = np.random.default_rng(0)
    print(f"XLNet {args.n_layer} layers, d_model {args.d_model}, batch 1, greedy, "
          f"{args.new_tokens} new tokens, TF {tf.__version__}, {os.cpu_count()} CPUs")
    print(f"{'prompt':>6} | {'cached tok/s':>12} | {'uncached tok/s':>14} | ratio | same tokens")
    for plen in args.prompt_lens:
        prompt = rng.integers(10, args.n_token, plen).tolist()
        gen.generate(prompt, args.new_tokens, stop_ids=())          # tracing
        t0 = time.perf_counter()
        cached = gen.generate(prompt, args.new_tokens, stop_ids=())
        t_c = time.perf_counter() - t0
        t0 = time.perf_counter()
        uncached = gen.generate(prompt, args.new_tokens, stop_ids=(), use_cache=False)
        t_u = time.perf_counter() - t0
        n = args.new_tokens
        print(f"{plen:>6} | {n / t_c:>12.1f} | {n / t_u:>14.2f} | {t_u / t_c:5.1f} | "
              f"{cached.ids == uncached.ids}", flush=True)


if __name__ == "__main__":
    main()
