"""Generation from Hugging Face weights (the tiny XLNetLMHeadModel folder of
tests/golden/hf_tiny, vocabulary of 96 ids): the cached path gives the uncached path's
tokens, and the first token is the argmax of the full two-stream forward."""
import json
import os

import numpy as np

import xlnet_tf
from xlnet_tf.generation.generator import Generator

HF_TINY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "golden", "hf_tiny")


class IdTokenizer:
    """Ids only (the fixture's vocabulary has no SentencePiece model)."""
    vocab_size = 96

    def encode_ids(self, text):
        raise AssertionError("the test passes ids")

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(str(i) for i in ids)


def test_hf_weights_generate_the_same_cached_and_uncached():
    with open(os.path.join(HF_TINY, "config.json"), encoding="utf-8") as f:
        hf = json.load(f)
    cfg = xlnet_tf.XLNetConfig(n_token=hf["vocab_size"], d_model=hf["d_model"],
                               n_layer=hf["n_layer"], n_head=hf["n_head"],
                               d_head=hf["d_model"] // hf["n_head"], d_inner=hf["d_inner"],
                               ff_activation="gelu", dropout=0.0, dropatt=0.0)
    model = xlnet_tf.XLNetLMModel(cfg)
    result = xlnet_tf.load_hf_checkpoint(model, HF_TINY)
    assert "model/lm_loss/bias" in result.loaded
    gen = Generator(model, IdTokenizer())
    prompts = [[10, 20, 30, 40, 50], [60, 70], [15] * 12]
    cached = gen.generate(prompts, 12, stop_ids=())
    uncached = gen.generate(prompts, 12, stop_ids=(), use_cache=False)
    assert [c.ids for c in cached] == [u.ids for u in uncached]
    sampled = gen.generate(prompts, 12, "sample", top_p=0.9, seed=3, stop_ids=())
    assert [s.ids for s in sampled] == [
        s.ids for s in gen.generate(prompts, 12, "sample", top_p=0.9, seed=3, stop_ids=(),
                                    use_cache=False)]
    # first token: argmax of the query stream at position 5 that sees the 5 prompt tokens
    perm = np.zeros([1, 6, 6], np.float32)
    perm[:, :, 5] = 1.0
    tm = np.zeros([1, 1, 6], np.float32)
    tm[0, 0, 5] = 1.0
    logits = model({"input_ids": np.array([[10, 20, 30, 40, 50, 6]], np.int32),
                    "perm_mask": perm, "target_mapping": tm})["logits"][0, 0].numpy()
    assert int(np.argmax(np.where(gen.banned, -np.inf, logits))) == cached[0].ids[0]
