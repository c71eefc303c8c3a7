"""nanoGPT's shakespeare_char training (train.py's learning-rate schedule, batches and step, with the
model of ``bench/nanogpt_ref.py``), run one chunk of iterations at a time so ``bench/shakespeare.py`` can
interleave it with our trainer; and its evaluation on the whole val split."""
from __future__ import annotations

import math

import torch

from bench import nanogpt_ref

EVAL_BATCH = 64  # windows per evaluation forward pass


def nano_lr(it: int, p: dict) -> float:
    """train.py's get_lr: linear warm-up, cosine decay to min_lr at lr_decay_iters."""
    if it < p["warmup_iters"]:
        return p["learning_rate"] * (it + 1) / (p["warmup_iters"] + 1)
    if it > p["lr_decay_iters"]:
        return p["min_lr"]
    ratio = (it - p["warmup_iters"]) / (p["lr_decay_iters"] - p["warmup_iters"])
    return p["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (p["learning_rate"] - p["min_lr"])


class NanoRun:
    """nanoGPT's shakespeare_char training on the char ids, one chunk of iterations at a time."""

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, vocab: int, p: dict) -> None:
        self.train_ids, self.val_ids, self.p = train_ids, val_ids, p
        torch.manual_seed(p["seed"])
        cfg = nanogpt_ref.GPTConfig(block_size=p["block_size"], vocab_size=vocab, n_layer=p["n_layer"],
                                    n_head=p["n_head"], n_embd=p["n_embd"], dropout=0.0, bias=False)
        self.model = nanogpt_ref.GPT(cfg).train()
        self.opt = self.model.configure_optimizers(p["weight_decay"], p["learning_rate"], (p["beta1"], p["beta2"]),
                                                   "cpu")
        self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        # get_batch draws from the global RNG in train.py; a private generator keeps our trainer's
        # torch.manual_seed calls (between rounds) from replaying nanoGPT's batches.
        self.gen = torch.Generator().manual_seed(p["seed"])
        self.it = 0
        self.loss = float("nan")

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        T, B = self.p["block_size"], self.p["batch_size"]
        ix = torch.randint(len(self.train_ids) - T, (B,), generator=self.gen)
        x = torch.stack([self.train_ids[i:i + T] for i in ix])
        y = torch.stack([self.train_ids[i + 1:i + 1 + T] for i in ix])
        return x, y

    def steps(self, n: int) -> None:
        for _ in range(n):
            lr = nano_lr(self.it, self.p)
            for g in self.opt.param_groups:
                g["lr"] = lr
            x, y = self.batch()
            self.loss = nanogpt_ref.train_step(self.model, self.opt, self.scaler, x, y, self.p["grad_clip"])
            self.it += 1

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Summed NLL over the whole val split in non-overlapping windows (targets val[1:], each once)."""
        self.model.eval()
        T, ids = self.p["block_size"], self.val_ids
        n_windows = -(-(len(ids) - 1) // T)
        nll, n = 0.0, 0
        for first in range(0, n_windows, EVAL_BATCH):
            rows = range(first, min(first + EVAL_BATCH, n_windows))
            x = torch.zeros(len(rows), T, dtype=torch.long)
            y = torch.full((len(rows), T), -1, dtype=torch.long)
            for r, w in enumerate(rows):
                chunk = ids[w * T:w * T + T + 1]
                x[r, :len(chunk) - 1], y[r, :len(chunk) - 1] = chunk[:-1], chunk[1:]
            _, loss = self.model(x, y)  # nanoGPT's own loss: mean over targets != -1
            valid = int((y != -1).sum())
            nll += float(loss) * valid
            n += valid
        self.model.train()
        return {"loss": nll / n, "bpb": nll / n / math.log(2), "targets": n}
