"""lmforge models: torch modules only (no training, tracking or orchestration code).

Families: `CausalLM` (GPT decoder), `MaskedLM` (BERT encoder, sparse prediction), `Seq2SeqLM`
(encoder-decoder), all on one `Transformer` trunk built from a `ModelConfig`. Task heads attach to
a trunk by composition; LoRA and adapters are applied by module surgery.
"""

from model.adapters import AdaptedEmbedding, Adapter, apply_adapters, mark_only_adapters_trainable
from model.attention import KVCache
from model.causal_lm import CausalLM
from model.checkpoint import load_config, load_meta, load_model, save_model
from model.config import PRESETS, ModelConfig
from model.flops import PEAK_FLOPS, device_peak_flops, flops_per_token, mfu, param_count
from model.heads import SequenceClassifier, TokenClassifier
from model.lora import LoRAEmbedding, LoRALinear, apply_lora, mark_only_lora_trainable, merge_lora
from model.masked_lm import MaskedLM
from model.optim import build_adamw, param_groups
from model.seq2seq import Seq2SeqLM
from model.trainable import trainable_summary
from model.transformer import Transformer

__all__ = [
    "PEAK_FLOPS",
    "PRESETS",
    "AdaptedEmbedding",
    "Adapter",
    "CausalLM",
    "KVCache",
    "LoRAEmbedding",
    "LoRALinear",
    "MaskedLM",
    "ModelConfig",
    "Seq2SeqLM",
    "SequenceClassifier",
    "TokenClassifier",
    "Transformer",
    "apply_adapters",
    "apply_lora",
    "build_adamw",
    "device_peak_flops",
    "flops_per_token",
    "load_config",
    "load_meta",
    "load_model",
    "mark_only_adapters_trainable",
    "mark_only_lora_trainable",
    "merge_lora",
    "mfu",
    "param_count",
    "param_groups",
    "save_model",
    "trainable_summary",
]
