"""The CUDA TF32 flags are the process's: each stage sets them from its own dtype (a reviewer found a fine-tuning
run after a fresh pretraining trained with TF32, one after a cached pretraining without, under one run key)."""
from __future__ import annotations

import torch

from pipeline.pretrain.runtime import set_tf32, setup


def test_tf32_follows_the_stage_not_the_stage_before():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    threads = torch.get_num_threads()  # (setup sets the process's thread count)
    try:
        set_tf32(torch.device("cuda"), True)  # (the flags are plain settings: no device needed to set them)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        set_tf32(torch.device("cuda"), False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        set_tf32(torch.device("cpu"), True)  # a CPU stage leaves them alone
        assert not torch.backends.cuda.matmul.allow_tf32
        assert setup("cpu", "fp32", 1).dtype == "fp32" and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
        torch.set_num_threads(threads)
