"""ModelConfig: the one typed, validated description of every model family in lmforge.

A config is plain data: it is saved as JSON next to the weights, hashed into stage keys, and turned
into modules by the builders in `transformer.py`, `causal_lm.py`, `masked_lm.py` and `seq2seq.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Arch = Literal["decoder", "encoder", "encoder_decoder"]
Norm = Literal["layernorm", "rmsnorm"]
Mlp = Literal["gelu", "swiglu", "relu2"]
Pos = Literal["learned", "rotary", "relative"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "arch": ("decoder", "encoder", "encoder_decoder"),
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("gelu", "swiglu", "relu2"),
    "pos": ("learned", "rotary", "relative"),
}
_POSITIVE_INTS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")
_BOOLS = ("bias", "tie_embeddings", "qk_norm")


def _round_up(x: int, multiple: int) -> int:
    return ((x + multiple - 1) // multiple) * multiple


@dataclass(frozen=True)
class ModelConfig:
    """Shape and recipe of a transformer. Defaults build a small working decoder (0.8M params)."""

    arch: Arch = "decoder"
    n_layer: int = 4
    """Layers of the decoder stack; of the encoder stack for `encoder_decoder`."""
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 256
    """Longest sequence the model accepts (learned positions and the rotary cache have this size)."""
    vocab_size: int = 256
    """The tokenizer's real vocabulary; the embedding table is `padded_vocab` rows."""
    norm: Norm = "layernorm"
    mlp: Mlp = "gelu"
    pos: Pos = "learned"
    """Positions: a learned table, rotary, or T5's relative position bias (``relative``: bucketed, one table
    per stack shared by its layers)."""
    bias: bool = False
    """Biases in Linear layers and LayerNorms; False is a bit faster and no worse (nanoGPT)."""
    dropout: float = 0.0
    tie_embeddings: bool = True
    qk_norm: bool = False
    """Parameter-free RMS norm of queries and keys per head (modded-nanogpt): steadier at high lr."""
    mlp_ratio: float = 4.0
    n_dec_layer: int | None = None
    """Decoder layers of an `encoder_decoder` model; None means the same as `n_layer`."""

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"ModelConfig.{name}={value!r}: must be one of {allowed}")
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name}={value!r}: must be an int >= 1")
        for name in _BOOLS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"ModelConfig.{name}={value!r}: must be a bool (True or False)")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"ModelConfig.n_embd={self.n_embd!r}: must be divisible by n_head={self.n_head} "
                f"(allowed: multiples of {self.n_head})"
            )
        if self.pos == "rotary" and self.head_dim % 2 != 0:
            raise ValueError(
                f"ModelConfig.pos='rotary': head_dim n_embd/n_head={self.head_dim} must be even"
            )
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout={self.dropout!r}: must be a float in [0, 1)")
        if not isinstance(self.mlp_ratio, (int, float)) or self.mlp_ratio <= 0:
            raise ValueError(f"ModelConfig.mlp_ratio={self.mlp_ratio!r}: must be a number > 0")
        if self.n_dec_layer is not None:
            if self.arch != "encoder_decoder":
                raise ValueError(
                    f"ModelConfig.n_dec_layer={self.n_dec_layer!r}: only allowed with "
                    f"arch='encoder_decoder' (got arch={self.arch!r}); use None"
                )
            bad = not isinstance(self.n_dec_layer, int) or isinstance(self.n_dec_layer, bool)
            if bad or self.n_dec_layer < 1:
                raise ValueError(f"ModelConfig.n_dec_layer={self.n_dec_layer!r}: must be an int >= 1 or None")

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def padded_vocab(self) -> int:
        """Embedding rows: vocab rounded up to a multiple of 64 so the head matmul is well shaped."""
        return _round_up(self.vocab_size, 64)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of the MLP. SwiGLU has two input matrices, so it gets 2/3 of the width to
        keep the parameter count of the plain MLP (LLaMA convention), rounded to a multiple of 8."""
        width = self.mlp_ratio * self.n_embd
        if self.mlp == "swiglu":
            return _round_up(int(2 * width / 3), 8)
        return int(width)

    @property
    def dec_layers(self) -> int:
        return self.n_dec_layer if self.n_dec_layer is not None else self.n_layer

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict (e.g. `model_config.json`); unknown keys are an error, never ignored,
        because a silently dropped key would load a different model than the one that was saved."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # ---- named recipes ------------------------------------------------------------------------
    @classmethod
    def nanogpt(
        cls, n_layer: int, n_head: int, n_embd: int, block_size: int, vocab_size: int
    ) -> ModelConfig:
        """nanoGPT's GPT: pre-LN, LayerNorm, GELU 4x MLP, learned positions, tied head, no bias,
        no dropout. Same parameters and FLOPs as `GPTConfig(bias=False, dropout=0.0)`."""
        return cls(
            arch="decoder", n_layer=n_layer, n_head=n_head, n_embd=n_embd,
            block_size=block_size, vocab_size=vocab_size, norm="layernorm", mlp="gelu",
            pos="learned", bias=False, dropout=0.0, tie_embeddings=True,
        )

    @classmethod
    def modern(
        cls, n_layer: int, n_head: int, n_embd: int, block_size: int, vocab_size: int,
        arch: Arch = "decoder",
    ) -> ModelConfig:
        """The portable modded-nanogpt wins: RMSNorm, rotary positions, QK-norm, ReLU^2 MLP."""
        return cls(
            arch=arch, n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
            vocab_size=vocab_size, norm="rmsnorm", mlp="relu2", pos="rotary", qk_norm=True,
        )

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ModelConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)


PRESETS: dict[str, ModelConfig] = {
    # CPU-sized decoder: nanoGPT's README CPU config (0.8M params with a byte vocab).
    "tiny": ModelConfig.nanogpt(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=256),
    # shakespeare_char "baby GPT" shape (10.7M params with a byte vocab).
    "baby": ModelConfig.nanogpt(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=256),
    "gpt2_small": ModelConfig.nanogpt(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304),
    # BERT-Mini shape (4L/256) with an 8k sentencepiece vocab; cramming-style pre-norm, no bias.
    "bert_mini": ModelConfig(
        arch="encoder", n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=8192,
    ),
    "t5_tiny": ModelConfig(
        arch="encoder_decoder", n_layer=2, n_head=4, n_embd=128, block_size=128,
        vocab_size=8192, norm="rmsnorm", pos="rotary", n_dec_layer=2,
    ),
}
