"""Plain entry point for GPU boxes that have only torch, numpy, pyarrow and sentencepiece:

    python -m pipeline.pretrain --shards DATA/work/tokenize/<key> --out OUT [--set max_steps=100 ...]
    torchrun --nproc_per_node 8 -m pipeline.pretrain --shards ... --out ...   # DDP, same entry point

``--shards`` is a tokenize stage output (train/ and val/ Arrow shards, meta.json, tokenizer/).
Rerunning with the same ``--out`` resumes from ``OUT/checkpoint``. Figures go to stdout as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Before torch loads OpenMP: sleeping, not spinning, idle threads (a shared machine loses a core
# to each spinning thread).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pipeline.configtypes import ConfigError, build, deep_merge
from pipeline.overrides import apply_override
from pipeline.pretrain.config import PretrainConfig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.pretrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--preset", help="take the pretrain section of pipeline/presets/<name>.yaml (needs pyyaml)")
    ap.add_argument("--set", action="extend", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE",
                    help="pretrain config values, e.g. --set model.n_layer=12 compile=true")
    args = ap.parse_args(argv)
    data: dict = {}
    try:
        if args.preset:
            import yaml
            preset = Path(__file__).resolve().parents[1] / "presets" / f"{args.preset}.yaml"
            data = deep_merge(data, (yaml.safe_load(preset.read_text()) or {}).get("pretrain", {}))
        for assignment in args.overrides:
            apply_override(PretrainConfig, data, assignment)
        cfg = build(PretrainConfig, data)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from pipeline.pretrain.trainer import train
    stats = train(cfg, args.shards, args.out)
    print(json.dumps(stats, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
