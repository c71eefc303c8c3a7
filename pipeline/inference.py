"""Use a pretrained model: sample text from a causal LM, show a masked LM's top predictions, or let an
encoder-decoder fill blanks with spans."""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from model import CausalLM, MaskedLM, Seq2SeqLM, load_model
from pipeline.store import validate
from pipeline.tokenize.tokenizer import Tokenizer

MASK_MARKERS = re.compile(r"\[MASK\]|<mask>")


def latest_model(work: Path, model_class: str) -> Path:
    """The newest valid pretrain output whose model is ``model_class`` (CausalLM or MaskedLM; for MaskedLM an
    encoder-decoder, Seq2SeqLM, also does: both fill masks)."""
    classes = (model_class, "Seq2SeqLM") if model_class == "MaskedLM" else (model_class,)
    found = []
    for folder in (work / "pretrain").glob("*"):
        m, _ = validate(folder)
        meta = folder / "model" / "meta.json"
        if m is not None and meta.exists() and json.loads(meta.read_text())["model_class"] in classes:
            found.append((m.created, folder / "model"))
    if not found:
        kind = "causal LM (decoder)" if model_class == "CausalLM" else "masked LM (encoder) or encoder-decoder"
        hint = "" if model_class == "CausalLM" else " --set pretrain.model.arch=encoder (or encoder_decoder)"
        raise FileNotFoundError(f"no pretrained {kind} in {work / 'pretrain'}; run: lmforge run --until pretrain{hint}")
    return max(found)[1]


def model_folder(folder: Path) -> Path:
    """``--model``: a model folder (``model_config.json`` in it), or a pretrain output holding ``model/``."""
    for candidate in (folder, folder / "model"):
        if (candidate / "model_config.json").is_file():
            if not any((candidate / rel).is_file() for rel in ("tokenizer/tokenizer.model", "tokenizer.model")):
                model = candidate.parent / "model"
                hint = f"; the published model, with its tokenizer, is {model}" if (
                    model != candidate and (model / "model_config.json").is_file()) else ""
                raise FileNotFoundError(f"--model: {candidate} holds weights but no tokenizer (a training checkpoint?)"
                                        f"{hint}")
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
    """For each ``[MASK]`` (or ``<mask>``) in ``text``: a masked LM's top-k pieces and their probabilities, or an
    encoder-decoder's span (``fill_spans``: one, greedy, with its probability)."""
    model, _ = load_model(folder)
    if not isinstance(model, (MaskedLM, Seq2SeqLM)):
        raise ValueError(f"{folder} holds a {type(model).__name__}, not a masked LM or an encoder-decoder")
    tok = Tokenizer.from_dir(folder)
    pieces = MASK_MARKERS.split(text)
    if len(pieces) < 2:
        raise ValueError("fill-mask: the text has no [MASK] (or <mask>) to fill")
    if isinstance(model, Seq2SeqLM):
        return fill_spans(model, tok, pieces)
    ids: list[int] = []
    positions = []
    for i, piece in enumerate(pieces):
        ids += tok.encode(piece)
        if i < len(pieces) - 1:
            positions.append(len(ids))
            ids.append(tok.mask_id)
    if len(ids) > model.transformer.block_size:
        raise ValueError(f"fill-mask: the text is {len(ids)} tokens with its masks; the model reads at most "
                         f"{model.transformer.block_size}")
    model.eval()
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids]), predict_all=True)  # (1, T, V)
    scores = logits[0, positions]
    scores[:, tok.all_special_ids] = float("-inf")  # <mask>, <pad>, sentinels...: never a word to fill in
    scores[:, tok.vocab_size:] = float("-inf")  # a vocabulary padded for speed: ids of no piece
    probs = scores.softmax(-1)
    # What a piece writes: a piece and its byte-fallback twin write the same text, so their probabilities add up
    # (the list showed 's' twice); a lone byte of a longer character writes no text of its own: its name shows.
    specials = set(tok.all_special_ids)
    text_ids = [i for i in range(tok.vocab_size) if i not in specials]
    shown = [_written(tok, i) for i in text_ids]
    names = sorted(set(shown))
    where = {name: k for k, name in enumerate(names)}
    merged = torch.zeros(len(positions), len(names), dtype=probs.dtype).index_add_(
        1, torch.tensor([where[name] for name in shown]), probs[:, text_ids])
    best = merged.topk(min(top_k, len(names)), dim=-1)  # asking for more than there are gets all of them
    return [[(names[int(i)], float(p)) for p, i in zip(row_p, row_i)]
            for row_p, row_i in zip(best.values, best.indices)]


BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def _written(tok: Tokenizer, i: int) -> str:
    """What piece ``i`` writes: the piece with its word-start mark as a space (so that a word-start piece and the
    same letters inside a word stay apart), or for a byte-fallback piece the character it writes, the same as its
    twin piece's, or its name (``<0xE2>``) when it writes none alone (a byte of a longer character)."""
    piece = tok.id_to_piece(i)
    if not BYTE_PIECE.fullmatch(piece):
        return piece.replace("\u2581", " ")
    text = tok.decode([i])
    return text if text and "\ufffd" not in text else piece


@torch.no_grad()
def fill_spans(model: Seq2SeqLM, tok: Tokenizer, pieces: list[str],
               max_tokens: int = 32) -> list[list[tuple[str, float]]]:
    """T5's blank filling: each mask between ``pieces`` becomes a sentinel in the encoder's input (then </s>), and
    the decoder writes ``<extra_id_0> span <extra_id_1> span ... </s>`` greedily (at most ``max_tokens`` per span),
    the sentinels in order: the next one is the only sentinel it may write. Per mask: [(the span's text, the
    product of its pieces' probabilities and of the span's end (the next sentinel or </s>), among what it could
    write)], or [] for a mask whose sentinel it never wrote (it ended first)."""
    from pipeline.loader.spans import decoder_start
    sentinels = tok.sentinel_ids
    n = len(pieces) - 1
    if n > len(sentinels):
        raise ValueError(f"fill-mask: {n} masks, and the model's tokenizer has {len(sentinels)} sentinels")
    src: list[int] = []
    for i, piece in enumerate(pieces):
        src += tok.encode(piece) + ([sentinels[i]] if i < n else [])
    src.append(tok.eos_id)
    if len(src) > model.encoder.block_size:
        raise ValueError(f"fill-mask: the text is {len(src)} tokens with its masks and </s>; the model reads at "
                         f"most {model.encoder.block_size}")
    out, spans, probs = [decoder_start(tok.special_ids), sentinels[0]], [[] for _ in range(n)], [1.0] * n
    reached = [True] + [False] * (n - 1)
    banned = [i for i in tok.all_special_ids if i != tok.eos_id]  # the sentinels among them
    model.eval()
    span = 0
    while len(out) < model.decoder.block_size and len(out) < 2 + n * (max_tokens + 1):
        logits, _ = model(torch.tensor([src]), torch.tensor([out]))
        full = logits[0, -1].float().softmax(-1)
        p = full.clone()
        p[banned] = 0.0
        if span + 1 < n:
            p[sentinels[span + 1]] = full[sentinels[span + 1]]
        if len(spans[span]) >= max_tokens:  # this span is full: the next sentinel or the end
            keep = [tok.eos_id] + ([sentinels[span + 1]] if span + 1 < n else [])
            p = torch.zeros_like(p).index_copy_(0, torch.tensor(keep), p[keep])
        p = p / p.sum()
        nxt = int(p.argmax())
        if nxt == tok.eos_id or (span + 1 < n and nxt == sentinels[span + 1]):
            probs[span] *= float(p[nxt])  # the span ends here: that counts too (an empty span is not certain)
        if nxt == tok.eos_id:
            break
        if span + 1 < n and nxt == sentinels[span + 1]:
            span += 1
            reached[span] = True
        else:
            spans[span].append(nxt)
            probs[span] *= float(p[nxt])
        out.append(nxt)
    return [[(tok.decode(ids), prob)] if ok else [] for ids, prob, ok in zip(spans, probs, reached)]
