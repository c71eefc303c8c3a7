"""Encoder-decoder language model (T5-style layout with this project's blocks).

The encoder is a bidirectional `Transformer`; the decoder is a causal `Transformer` whose blocks
also cross-attend to the encoder output. Both share one token embedding, tied to the LM head when
`cfg.tie_embeddings` (as in T5 v1.0). Span corruption, the objective, belongs to the data side.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.config import ModelConfig
from model.layers import token_loss, vocab_logits
from model.transformer import Transformer


class Seq2SeqLM(nn.Module):
    WEIGHT_READ = ("lm_head",)  # read as a weight (vocab_logits), never called: model.lora refuses it

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.arch != "encoder_decoder":
            raise ValueError(
                f"Seq2SeqLM needs ModelConfig.arch='encoder_decoder', got arch={cfg.arch!r}"
            )
        self.vocab_size = cfg.vocab_size
        self.encoder = Transformer(cfg, causal=False, n_layer=cfg.n_layer)
        self.decoder = Transformer(
            cfg, causal=True, n_layer=cfg.dec_layers, cross=True, wte=self.encoder.wte
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.encoder.wte.weight
        else:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.02)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        return self.encoder.forward_hidden(src, src_mask)  # (B, S, C)

    def forward(
        self,
        src: Tensor,
        tgt_in: Tensor,
        targets: Tensor | None = None,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """src: (B, S) encoder input; tgt_in: (B, T) decoder input (targets shifted right behind a
        start token); targets: (B, T), -100 ignored; masks: (B, S) / (B, T), 1 = real token.
        Returns logits (B, T, vocab_size) and the mean cross-entropy (None without targets)."""
        memory = self.encode(src, src_mask)  # (B, S, C)
        h = self.decoder.forward_hidden(
            tgt_in, tgt_mask, memory=memory, memory_mask=src_mask
        )  # (B, T, C)
        logits = vocab_logits(h, self.lm_head.weight, None, self.vocab_size)  # (B, T, V_padded)
        loss = None if targets is None else token_loss(logits, targets)
        return logits[..., : self.vocab_size], loss

    @torch.no_grad()
    def generate_greedy(
        self, src: Tensor, start_id: int, max_new_tokens: int, src_mask: Tensor | None = None
    ) -> Tensor:
        """Greedy decoding without a cache (enc-dec models here are small): (B, 1 + new)."""
        was_training = self.training
        self.eval()
        memory = self.encode(src, src_mask)
        out = torch.full((src.size(0), 1), start_id, dtype=torch.long, device=src.device)
        for _ in range(max_new_tokens):
            ctx = out[:, -self.decoder.block_size :]
            h = self.decoder.forward_hidden(ctx, memory=memory, memory_mask=src_mask)[:, -1]
            logits = vocab_logits(h, self.lm_head.weight, None, self.vocab_size)[:, : self.vocab_size]
            out = torch.cat((out, logits.argmax(dim=-1, keepdim=True)), dim=1)
        self.train(was_training)
        return out
