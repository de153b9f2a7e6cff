"""Write tests/golden/hf_tiny/: a tiny Hugging Face XLNet checkpoint folder + expected outputs.

Why: `xlnet_tf.load_hf_checkpoint` must read what Hugging Face itself writes. The other goldens
(tools/make_golden.py) store weights under the ORIGINAL names; this fixture is the other
door: a real `save_pretrained` folder (`config.json` + `model.safetensors`, float32, with the
tied `lm_loss.weight` left out as HF does) and the float64 outputs HF computes from exactly
those float32 weights. tests/test_hf_loading.py reads it without torch.

This is a developer tool, not a project dependency. Run it with the side environment
(see tools/README_golden.md for how it is made):

    /work/venvs/hf/bin/python tools/make_hf_fixture.py            # rewrites tests/golden/hf_tiny
    /work/venvs/hf/bin/python tools/make_hf_fixture.py --out DIR  # somewhere else

Folder layout:
  config.json, model.safetensors (+ generation_config.json)   as written by save_pretrained
  expected.npz (shapes batch-major):
    description                0-d str
    versions                   0-d str (torch / transformers / numpy used)
    cls/in/input_ids           [B, T] int32   classification layout A SEP B SEP CLS, left padding
    cls/in/seg_ids             [B, T] int32   A=0 B=1 CLS=2 PAD=4
    cls/in/input_mask          [B, T] float32 1 = padding (a different amount per row)
    cls/out/hidden, cls/out/logits                 float64 content stream and LM logits
    perm/in/{input_ids, seg_ids, input_mask}      pretraining-style row layout, left padding
    perm/in/perm_mask          [B, T, T] float32 1 = query i may NOT attend key j
    perm/in/target_mapping     [B, P, T] float32 one-hot rows
    perm/out/hidden            [B, T, d] float64 content stream
    perm/out/query_hidden      [B, P, d] float64 query stream
    perm/out/logits            [B, P, V] float64 from the query stream
  The model runs without memory (use_mems=False), eval mode, dropout 0.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import XLNetConfig, XLNetLMHeadModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import _patch_float64_positions  # noqa: E402  (one definition of the patch)

SEED = 1906_08237
# d_model 32 / 4 heads / d_inner 48 / 96 tokens: ~25k parameters, ~100 KB of float32.
MODEL = dict(vocab_size=96, d_model=32, n_layer=2, n_head=4, d_inner=48)
CLS_ID, SEP_ID, PAD_ID = 3, 4, 5
SEG_A, SEG_B, SEG_CLS, SEG_PAD = 0, 1, 2, 4


def log(msg):
    print(f"[make_hf_fixture] {msg}", flush=True)


def randomise(model, rng):
    """Overwrite every parameter with non-trivial float32 values (biases and LayerNorm
    included) whose scales keep activations O(1), so no softmax saturates and every
    weight influences the outputs."""
    d = model.config.d_model
    di = model.config.d_inner
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            if name.endswith("layer_norm.weight"):
                value = 1.0 + 0.2 * rng.standard_normal(shape)
            elif name.endswith(("layer_norm.bias", "ff.layer_1.bias", "ff.layer_2.bias")):
                value = 0.2 * rng.standard_normal(shape)
            elif name.endswith(("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed", "lm_loss.bias")):
                value = 0.5 * rng.standard_normal(shape)
            elif name.endswith(("rel_attn.q", "rel_attn.k", "rel_attn.v", "rel_attn.r",
                                "ff.layer_1.weight")):
                value = rng.standard_normal(shape) / np.sqrt(d)
            elif name.endswith("rel_attn.o"):
                value = rng.standard_normal(shape) / np.sqrt(shape[1] * shape[2])
            elif name.endswith("ff.layer_2.weight"):
                value = rng.standard_normal(shape) / np.sqrt(di)
            elif name.endswith(("word_embedding.weight", "mask_emb")):
                value = rng.standard_normal(shape)
            else:
                raise RuntimeError(f"no rule to randomise parameter {name} {shape}")
            p.copy_(torch.from_numpy(value.astype(np.float32)))


def cls_inputs(rng, B, T, pads, V):
    """A SEP B SEP CLS rows with `pads[b]` padding tokens on the left (XLNet pads left)."""
    ids = np.full((B, T), PAD_ID, np.int32)
    seg = np.full((B, T), SEG_PAD, np.int32)
    mask = np.ones((B, T), np.float32)
    for b, pad in enumerate(pads):
        n = T - pad - 3                       # real word tokens in this row
        len_a = max(1, n // 2)
        words = rng.integers(9, V, size=n)
        row = list(words[:len_a]) + [SEP_ID] + list(words[len_a:]) + [SEP_ID, CLS_ID]
        segs = [SEG_A] * (len_a + 1) + [SEG_B] * (n - len_a + 1) + [SEG_CLS]
        ids[b, pad:] = row
        seg[b, pad:] = segs
        mask[b, pad:] = 0.0
    return dict(input_ids=ids, seg_ids=seg, input_mask=mask)


def perm_inputs(rng, B, T, pads, P, V):
    """Two-stream inputs: a random factorisation order over P real target tokens per row.

    perm_mask[b, i, j] = 1 when j is a target that i may not see: non-targets see no target,
    target i sees the targets earlier in the order (the original's _local_perm rule)."""
    inp = cls_inputs(rng, B, T, pads, V)
    perm = np.zeros((B, T, T), np.float32)
    tmap = np.zeros((B, P, T), np.float32)
    for b, pad in enumerate(pads):
        targets = np.sort(rng.choice(np.arange(pad, T - 1), size=P, replace=False))
        rank = np.full(T, -1)
        rank[targets] = rng.permutation(P)
        is_target = rank >= 0
        perm[b] = (rank[None, :] >= rank[:, None]) & is_target[None, :]
        tmap[b, np.arange(P), targets] = 1.0
    inp.update(perm_mask=perm, target_mapping=tmap)
    return inp


def run_hf(model, inp):
    """One eval forward without memory; float64 content stream, query stream and logits."""
    kwargs = dict(input_ids=torch.from_numpy(inp["input_ids"].astype(np.int64)),
                  token_type_ids=torch.from_numpy(inp["seg_ids"].astype(np.int64)),
                  input_mask=torch.from_numpy(inp["input_mask"]).to(model.dtype),
                  use_mems=False, output_hidden_states=True, return_dict=True)
    two_stream = "target_mapping" in inp
    if two_stream:
        kwargs["perm_mask"] = torch.from_numpy(inp["perm_mask"]).to(model.dtype)
        kwargs["target_mapping"] = torch.from_numpy(inp["target_mapping"]).to(model.dtype)
    with torch.no_grad():
        out = model(**kwargs)
    hs = out.hidden_states
    res = {"logits": out.logits}
    if two_stream:
        # HF flattens (h0, g0, h1, g1, ...): the final content stream is second to last
        res["hidden"], res["query_hidden"] = hs[-2], hs[-1]
        if not torch.equal(model.lm_loss(hs[-1]), out.logits):
            raise RuntimeError("two-stream logits are not lm_loss(final query stream)")
    else:
        res["hidden"] = hs[-1]
    return {k: v.numpy() for k, v in res.items()}


def build(out_dir):
    rng = np.random.default_rng(SEED)
    torch.manual_seed(SEED)
    cfg = XLNetConfig(**MODEL, ff_activation="gelu_new", dropout=0.0, mem_len=None)
    model = XLNetLMHeadModel(cfg).eval()
    randomise(model, rng)
    if model.lm_loss.weight.data_ptr() != model.transformer.word_embedding.weight.data_ptr():
        raise RuntimeError("lm_loss.weight is not tied to the word embedding")
    model.save_pretrained(out_dir)

    # the folder must hold exactly our float32 weights, and HF must load it back identically
    saved = load_file(os.path.join(out_dir, "model.safetensors"))
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for name, value in saved.items():
        if value.dtype != np.float32 or not np.array_equal(value, params[name]):
            raise RuntimeError(f"saved tensor {name} differs from the model's parameter")
    missing = sorted(set(params) - set(saved) - {"lm_loss.weight"})
    if missing:
        raise RuntimeError(f"save_pretrained left out {missing}")

    V = MODEL["vocab_size"]
    cases = {"cls": cls_inputs(rng, 3, 12, [0, 3, 7], V),
             "perm": perm_inputs(rng, 2, 10, [0, 3], 4, V)}
    reloaded = XLNetLMHeadModel.from_pretrained(out_dir).eval()
    model64 = XLNetLMHeadModel.from_pretrained(out_dir).double().eval()
    _patch_float64_positions(model64.transformer)
    arrays = {"description": np.array(
                  "tiny XLNetLMHeadModel (vocab 96, d_model 32, 2 layers, 4 heads, d_inner 48, "
                  "gelu_new) saved with save_pretrained; float64 outputs of HF on the saved "
                  "float32 weights: 'cls' = padded batch with segment ids (left padding 0/3/7), "
                  "'perm' = two-stream perm_mask + target_mapping (P=4) with padding 0/3"),
              "versions": np.array(f"torch {torch.__version__}, transformers "
                                   f"{__import__('transformers').__version__}, numpy "
                                   f"{np.__version__}")}
    for case, inp in cases.items():
        exp = run_hf(model64, inp)
        f32 = run_hf(reloaded, inp)
        for key, value in exp.items():
            if value.dtype != np.float64 or not np.all(np.isfinite(value)):
                raise RuntimeError(f"{case}/{key}: not finite float64")
            err = np.abs(f32[key] - value).max() / np.abs(value).max()
            log(f"{case}/{key} {list(value.shape)}: HF float32 vs float64 max rel err {err:.2e}")
            if err > 1e-5:
                raise RuntimeError(f"{case}/{key}: HF float32 and float64 disagree ({err:.2e})")
            arrays[f"{case}/out/{key}"] = value
        for key, value in inp.items():
            arrays[f"{case}/in/{key}"] = value
    np.savez_compressed(os.path.join(out_dir, "expected.npz"), **arrays)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(here, os.pardir, "tests", "golden",
                                                      "hf_tiny"),
                        help="output folder (default: tests/golden/hf_tiny in this checkout)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    log(f"torch {torch.__version__}, numpy {np.__version__}, writing {out}")
    # build in a temporary sibling folder, then swap it in: no half-written fixture
    tmp = tempfile.mkdtemp(prefix=".tmp_hf_fixture_", dir=parent)
    try:
        build(tmp)
        os.chmod(tmp, 0o755)
        for name in os.listdir(tmp):  # save_pretrained may create 0600 files
            os.chmod(os.path.join(tmp, name), 0o644)
        old = None
        if os.path.exists(out):
            old = tempfile.mkdtemp(prefix=".old_hf_fixture_", dir=parent)
            os.rmdir(old)
            os.replace(out, old)
        os.replace(tmp, out)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out))}
    log(f"done: {sizes}, total {sum(sizes.values()) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
