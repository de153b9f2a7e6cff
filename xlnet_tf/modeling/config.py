"""XLNetConfig: the eight keys of ``xlnet_config.json`` plus the per-run options.

The original splits these into ``XLNetConfig`` (what a checkpoint *is*: stored as
``xlnet_config.json``) and ``RunConfig`` (how a run uses it).  We keep one object but
serialise only the eight checkpoint keys to ``xlnet_config.json``, byte-for-byte in the
original's format, so a file we write can sit next to the published checkpoints.
"""
import dataclasses
import json
import os

from xlnet_tf.io import read_json, write_text_atomic

# The eight keys of the original xlnet_config.json, in the order the original documents them.
CHECKPOINT_KEYS = ("n_layer", "d_model", "n_head", "d_head", "d_inner", "ff_activation",
                   "untie_r", "n_token")

_INT_KEYS = ("n_layer", "d_model", "n_head", "d_head", "d_inner", "n_token")


@dataclasses.dataclass
class XLNetConfig:
    """Model hyper-parameters (checkpoint keys) and run options.

    Checkpoint keys (written to ``xlnet_config.json``):
      n_layer, d_model, n_head, d_head, d_inner, ff_activation ('gelu' = the original's tanh
      approximation, or 'relu'), untie_r (per-layer r_w/r_r/r_s biases), n_token (vocab size).

    Run options (defaults are the original RunConfig's): mem_len (None/0 = no memory),
    reuse_len, bi_data, clamp_len (-1 = no clamping), same_length (only with attn_type='uni'),
    attn_type ('bi' | 'uni'), dropout, dropatt, init ('normal' | 'uniform'), init_std,
    init_range.  ``recompute`` re-runs each layer in the backward pass (and computes the
    content-stream attention in blocks of 256 query rows) instead of keeping activations:
    the same results with less memory, at a slower training step.
    """
    n_layer: int = 12
    d_model: int = 768
    n_head: int = 12
    d_head: int = 64
    d_inner: int = 3072
    ff_activation: str = "gelu"
    untie_r: bool = True
    n_token: int = 32000
    # run options
    mem_len: int = None
    reuse_len: int = None
    bi_data: bool = False
    clamp_len: int = -1
    same_length: bool = False
    attn_type: str = "bi"
    dropout: float = 0.1
    dropatt: float = 0.1
    init: str = "normal"
    init_std: float = 0.02
    init_range: float = 0.1
    recompute: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self):
        for key in _INT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"XLNetConfig.{key} must be a positive integer, got {value!r}")
        if self.ff_activation not in ("gelu", "relu"):
            raise ValueError(f"XLNetConfig.ff_activation must be 'gelu' or 'relu', got "
                             f"{self.ff_activation!r}")
        if not isinstance(self.untie_r, bool):
            raise ValueError(f"XLNetConfig.untie_r must be true or false, got {self.untie_r!r}")
        if self.attn_type not in ("bi", "uni"):
            raise ValueError(f"attn_type must be 'bi' or 'uni', got {self.attn_type!r}")
        if self.init not in ("normal", "uniform"):
            raise ValueError(f"init must be 'normal' or 'uniform', got {self.init!r}")
        for key in ("dropout", "dropatt"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {value!r}")
        if self.mem_len is not None and self.mem_len < 0:
            raise ValueError(f"mem_len must be >= 0, got {self.mem_len}")
        if self.reuse_len is not None and self.reuse_len < 0:
            raise ValueError(f"reuse_len must be >= 0, got {self.reuse_len}")

    # ------------------------------------------------------------------ serialisation
    def checkpoint_dict(self):
        """The eight keys of xlnet_config.json."""
        return {k: getattr(self, k) for k in CHECKPOINT_KEYS}

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown XLNetConfig keys {unknown}")
        return cls(**d)

    def to_json_string(self):
        """The original's format: sorted keys, indent 4 and Python 2's ', ' item separator
        (so lines end in ', '), no trailing newline."""
        return json.dumps(self.checkpoint_dict(), indent=4, sort_keys=True,
                          separators=(", ", ": "))

    def to_json(self, json_path):
        """Write xlnet_config.json (atomically: temporary file + rename)."""
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        write_text_atomic(json_path, self.to_json_string())

    @classmethod
    def from_json(cls, json_path, **run_options):
        """Read an xlnet_config.json (exactly the eight keys) and add run options."""
        try:
            data = read_json(json_path, what="model config")
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e} Pass the xlnet_config.json that came with the "
                                    f"checkpoint.") from None
        missing = [k for k in CHECKPOINT_KEYS if k not in data]
        unknown = sorted(k for k in data if k not in CHECKPOINT_KEYS)
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unknown:
                parts.append(f"unknown keys {unknown}")
            raise ValueError(f"model config {json_path!r}: {' and '.join(parts)}; an "
                             f"xlnet_config.json holds exactly {list(CHECKPOINT_KEYS)}")
        try:
            return cls(**data, **run_options)
        except ValueError as e:
            raise ValueError(f"model config {json_path!r}: {e}") from None
        except TypeError as e:
            raise ValueError(f"run options for {json_path!r}: {e}") from None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def num_parameters(self, with_lm_head=True):
        """Parameter count implied by the shapes (includes mask_emb; lm_loss/bias if asked)."""
        d, h, dh, di, L, v = (self.d_model, self.n_head, self.d_head, self.d_inner,
                              self.n_layer, self.n_token)
        per_layer = 5 * d * h * dh + 2 * 2 * d + d * di + di + di * d + d
        biases = 3 * (L if self.untie_r else 1) * h * dh + L * 2 * h * dh
        return v * d + d + biases + L * per_layer + (v if with_lm_head else 0)


XLNET_BASE = dict(n_layer=12, d_model=768, n_head=12, d_head=64, d_inner=3072,
                  ff_activation="gelu", untie_r=True, n_token=32000)
XLNET_LARGE = dict(n_layer=24, d_model=1024, n_head=16, d_head=64, d_inner=4096,
                   ff_activation="gelu", untie_r=True, n_token=32000)
