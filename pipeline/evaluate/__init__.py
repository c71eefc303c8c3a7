"""Evaluate stage: one report of what the pipeline produced.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run``, so that reading configs and computing stage keys stays cheap.
"""
from pathlib import Path
from typing import Any

from pipeline.configtypes import ConfigError, existing_file
from pipeline.evaluate.config import EvaluateConfig
from pipeline.lazy import stage_exports
from pipeline.store import DIGESTS, files_fingerprint

VERSION = "7"  # 2: the headline gain's interval from test-set resampling in the report; 3: macro-F1 (scoring);
# 4: the test metrics by task, method and init in the stats (MLflow metrics); 5: the report's task data (rows kept
# per split, rows dropped by reason); 6: an encoder-decoder's span-corruption figures, the LM part's noise rate;
# 7: the inputs each split cut at max_len, in the task data table


def check(run_cfg: Any, root: Any = None) -> None:
    """At planning: a device this machine lacks; for an encoder-decoder, the sentinels its span-corrupted
    scoring at ``evaluate.mask_rate`` needs."""
    from pipeline.pretrain import check_device, span_sentinels
    cfg, tok = run_cfg.evaluate, run_cfg.tokenize
    check_device(cfg.device, "evaluate.device")
    if run_cfg.pretrain.resolved_objective == "span":
        from pipeline.pretrain.config import check_noise
        check_noise(cfg.mask_rate, cfg.mean_span, "evaluate")
        length, need, have, reused = span_sentinels(run_cfg.pretrain.model.block_size, cfg.mask_rate,
                                                    cfg.mean_span, tok, root)
        if need > have:
            has = f"tokenize.sentinels is {have}" if reused is None else f"the tokenizer {reused} has {have}"
            raise ConfigError(f"evaluate.mask_rate: got {cfg.mask_rate} (mean_span {cfg.mean_span}), which needs "
                              f"{need} sentinels for {length}-token windows; {has}: lower the rate, or use more "
                              "sentinels")


__all__ = ["VERSION", "EvaluateConfig", "fingerprint", "extra_text", "run", "check", "key_config"]


def key_config(cfg: EvaluateConfig, run_cfg: Any = None) -> dict[str, Any]:
    """The config in the stage's key: the noise settings a model is not scored with count as their defaults (a
    decoder is scored with none, a masked LM with no spans), so setting them rebuilds nothing (the keys made
    before stand)."""
    import dataclasses

    from pipeline.configtypes import to_dict
    d = to_dict(cfg)
    if run_cfg is None:
        return d
    arch = run_cfg.pretrain.model.arch
    defaults = {f.name: f.default for f in dataclasses.fields(EvaluateConfig)}
    unread = ("mask_rate", "mean_span") if arch == "decoder" else ("mean_span",) if arch == "encoder" else ()
    return {**d, **{k: defaults[k] for k in unread}}


def fingerprint(cfg: EvaluateConfig, root: Path) -> str:
    """What the ``extra_texts`` files hold now (their content digests): an edited file means a new key.
    A missing one is a ConfigError here, at planning, not when the stage runs at the end of the flow."""
    return files_fingerprint(extra_text(root, p, i) for i, p in enumerate(cfg.extra_texts))


def extra_text(root: Path, path: str, i: int) -> Path:
    """The ``i``-th extra text: it must exist and be UTF-8 text that is not blank (a ConfigError naming the key),
    checked at planning (a file that is not UTF-8 stopped the run at its end, after pretraining) and again when the
    stage starts; the file is read again only when its stat changed (``store.DIGESTS``)."""
    key = f"evaluate.extra_texts[{i}]"
    p = existing_file(root, path, key)
    if p.stat().st_size == 0:
        raise ConfigError(f"{key}: {str(path)!r} is empty: nothing to score")
    if why := DIGESTS.derived(p, "extra-text check 1", _not_text):
        raise ConfigError(f"{key}: {str(path)!r} {why}")
    return p


def _not_text(p: Path) -> str:
    """Why the file is no text to score ("" when it is)."""
    from pipeline.ingest.items import looks_utf16, text_encoding
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        codec = text_encoding(data[:4]).upper()
        hint = ("gzip-compressed: decompress it first" if data[:2] == b"\x1f\x8b" else
                f"{codec} (its byte-order mark says so): convert it first, e.g. iconv -f {codec} -t UTF-8"
                if codec != "UTF-8-SIG" else "convert it first, e.g. iconv -f latin1 -t utf-8 if it is Latin-1")
        return f"is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); {hint}"
    if looks_utf16(data):  # valid UTF-8, but no text: UTF-16 without its mark is every other byte NUL
        return ("holds NUL bytes throughout (UTF-16 without a byte-order mark?): convert it first, e.g. iconv -f "
                "UTF-16LE (or UTF-16BE) -t UTF-8")
    return "" if text.strip() else "holds only whitespace: nothing to score"


__getattr__ = stage_exports(__name__, {'run', 'resolve_texts'})
