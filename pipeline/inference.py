"""Use a pretrained model: sample text from a causal LM, or show a masked LM's top predictions."""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from model import CausalLM, MaskedLM, load_model
from pipeline.store import validate
from pipeline.tokenize.tokenizer import Tokenizer

MASK_MARKERS = re.compile(r"\[MASK\]|<mask>")


def latest_model(work: Path, model_class: str) -> Path:
    """The newest valid pretrain output whose model is ``model_class`` (CausalLM or MaskedLM)."""
    found = []
    for folder in (work / "pretrain").glob("*"):
        m, _ = validate(folder)
        meta = folder / "model" / "meta.json"
        if m is not None and meta.exists() and json.loads(meta.read_text())["model_class"] == model_class:
            found.append((m.created, folder / "model"))
    if not found:
        kind = "causal LM (decoder)" if model_class == "CausalLM" else "masked LM (encoder)"
        hint = "" if model_class == "CausalLM" else " --set pretrain.model.arch=encoder"
        raise FileNotFoundError(f"no pretrained {kind} in {work / 'pretrain'}; run: lmforge run --until pretrain{hint}")
    return max(found)[1]


def model_folder(folder: Path) -> Path:
    """``--model``: a model folder (``model_config.json`` in it), or a pretrain output holding ``model/``."""
    for candidate in (folder, folder / "model"):
        if (candidate / "model_config.json").is_file():
            return candidate
    raise FileNotFoundError(f"--model: no model in {folder} (expected model_config.json there or in its model/; "
                            "e.g. data/work/pretrain/<key>/model)")


def generate(folder: Path, prompt: str, max_tokens: int = 100, temperature: float = 0.8,
             top_k: int | None = 50, seed: int = 0) -> str:
    model, _ = load_model(folder)
    if not isinstance(model, CausalLM):
        raise ValueError(f"{folder} holds a {type(model).__name__}, not a causal LM")
    tok = Tokenizer.from_dir(folder)
    ids = tok.encode(prompt)
    if tok.bos_id is not None and not ids:
        ids = [tok.bos_id]
    gen = torch.Generator().manual_seed(seed)
    out = model.generate(torch.tensor([ids]), max_tokens, temperature=temperature, top_k=top_k, generator=gen)
    new = out[0, len(ids):].tolist()
    if tok.eos_id in new:
        new = new[:new.index(tok.eos_id)]
    return prompt + tok.decode(new)


def fill_mask(folder: Path, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each ``[MASK]`` (or ``<mask>``) in ``text``: the top-k pieces and their probabilities."""
    model, _ = load_model(folder)
    if not isinstance(model, MaskedLM):
        raise ValueError(f"{folder} holds a {type(model).__name__}, not a masked LM")
    tok = Tokenizer.from_dir(folder)
    pieces = MASK_MARKERS.split(text)
    if len(pieces) < 2:
        raise ValueError("fill-mask: the text has no [MASK] (or <mask>) to fill")
    ids: list[int] = []
    positions = []
    for i, piece in enumerate(pieces):
        ids += tok.encode(piece)
        if i < len(pieces) - 1:
            positions.append(len(ids))
            ids.append(tok.mask_id)
    model.eval()
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]), predict_all=True)  # (1, T, V)
    scores = logits[0, positions]
    scores[:, tok.all_special_ids] = float("-inf")  # <mask>, <pad>, sentinels...: never a word to fill in
    scores[:, tok.vocab_size:] = float("-inf")  # a vocabulary padded for speed: ids of no piece
    probs = scores.softmax(-1)
    n_text = tok.vocab_size - len(set(tok.all_special_ids))
    best = probs.topk(min(top_k, n_text), dim=-1)  # asking for more than there are pieces gets all of them
    return [[(tok.decode([int(i)]) or tok.id_to_piece(int(i)), float(p)) for p, i in zip(row_p, row_i)]
            for row_p, row_i in zip(best.values, best.indices)]
