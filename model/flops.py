"""Parameter counts, training FLOPs per token and model FLOPs utilisation (MFU).

FLOPs follow nanoGPT's `estimate_mfu` (PaLM paper, appendix B): per trained token,
    6 * N  +  12 * L * n_embd * T
where N counts parameters except position embeddings (tied weights once) and the second term is
attention's QK^T and AV matmuls over a context of T. The estimate ignores norms, softmax and the
MLM head's sparsity, as everyone's does, so MFU numbers compare across projects.
"""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig

# Dense bf16 tensor-core peaks (vendor figures). H200 is H100 SXM silicon with more/faster HBM.
PEAK_FLOPS: dict[str, float] = {
    "H100 PCIe": 756e12,
    "H100 SXM": 989e12,
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
}


def device_peak_flops(device_name: str) -> float | None:
    """Peak bf16 FLOP/s for a device name as torch.cuda.get_device_name reports it
    ("NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"); None if unknown (CPU)."""
    name = device_name.upper()
    # Most specific key first, so "H100 PCIe" wins over "H100".
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if all(part in name for part in key.upper().split()):
            return PEAK_FLOPS[key]
    return None


def build_for_config(cfg: ModelConfig) -> nn.Module:
    """The language model of cfg.arch (imports here: the model files import this package)."""
    from model.causal_lm import CausalLM
    from model.masked_lm import MaskedLM
    from model.seq2seq import Seq2SeqLM

    family = {"decoder": CausalLM, "encoder": MaskedLM, "encoder_decoder": Seq2SeqLM}[cfg.arch]
    return family(cfg)


def param_count(model_or_cfg: nn.Module | ModelConfig, non_embedding: bool = True) -> int:
    """Parameters of a module, or of the language model a config builds (built on the meta
    device: exact, with no memory). non_embedding=True drops position embeddings (`wpe`, and a relative
    position bias table), as nanoGPT's get_num_params does; token embeddings stay because the tied head uses them."""
    if isinstance(model_or_cfg, ModelConfig):
        with torch.device("meta"):
            model_or_cfg = build_for_config(model_or_cfg)
    total = 0
    for name, p in model_or_cfg.named_parameters():  # tied parameters appear once
        if non_embedding and name.endswith(("wpe.weight", "rel_bias.bias.weight")):
            continue
        total += p.numel()
    return total


def flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> int:
    """Training FLOPs (forward + backward) per token. seq_len defaults to block_size. For an
    encoder-decoder each decoder layer counts twice in the attention term (self + cross)."""
    T = cfg.block_size if seq_len is None else seq_len
    n = param_count(cfg, non_embedding=True)
    attn_layers = cfg.n_layer + (2 * cfg.dec_layers if cfg.arch == "encoder_decoder" else 0)
    return 6 * n + 12 * attn_layers * cfg.n_embd * T


def seq2seq_flops(cfg: ModelConfig, src_len: int, tgt_len: int) -> int:
    """Training FLOPs (forward + backward) of one encoder-decoder example of ``src_len`` source and ``tgt_len``
    target tokens: 6 x (the encoder's weights x src_len + the decoder's weights and the LM head x tgt_len), plus
    12 x width per query and key in each attention: the encoder's over src_len, the decoder's self-attention
    over tgt_len and its cross-attention over src_len. (``flops_per_token`` charges every token both stacks.)"""
    with torch.device("meta"):
        model = build_for_config(cfg)
    own = lambda stack: sum(p.numel() for n, p in stack.named_parameters() if not n.startswith(("wte.", "wpe.")))
    C, L_enc, L_dec = cfg.n_embd, cfg.n_layer, cfg.dec_layers
    weights = own(model.encoder) * src_len + (own(model.decoder) + cfg.padded_vocab * C) * tgt_len
    attention = L_enc * src_len * src_len + L_dec * tgt_len * (tgt_len + src_len)
    return 6 * weights + 12 * C * attention


def mfu(tokens_per_s: float, cfg: ModelConfig, peak: float, seq_len: int | None = None) -> float:
    """Fraction of `peak` FLOP/s achieved at `tokens_per_s` training throughput."""
    return flops_per_token(cfg, seq_len) * tokens_per_s / peak
