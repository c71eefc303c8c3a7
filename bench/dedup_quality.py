"""Near-duplicate detection quality at Jaccard >= 0.8: the dedup stage against datasketch's MinHashLSH.

Real documents (TinyStories, WikiText-2) get planted near-duplicates made by controlled edits (adjacent word
swaps, insertions, deletions, two sentences swapped) and are mixed with unrelated documents. Ground truth is
every pair whose true word-5-gram Jaccard is >= 0.8, planted or accidental, found exactly by an all-pairs
prefix-filter join implemented here independently of the stage. A pair counts as detected when both documents
end in the same cluster (for the baseline: connected components of its LSH query results); every other pair
in a common cluster counts against precision.

Two corpora, each run through both systems:
- main (the headline ``precision`` / ``recall``): each base document gets ONE edited copy whose true Jaccard
  to it is spread over ~0.4-1.0, so positives and hard negatives near the threshold are both plentiful;
- families (``family_*`` fields): each base gets three lightly edited copies. Two copies can each be >= 0.8
  to the base but < 0.8 to each other; any clustering that removes both (which is what dedup wants) puts
  that sibling pair in one cluster, so this corpus measures the price of transitivity, not detection.

    python bench/dedup_quality.py            # ~2k documents, about a minute
    python bench/dedup_quality.py --long     # twice as many
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ would be first on sys.path, where a file may share a stdlib module's name
# (bench/tokenize.py shadows `tokenize`, which numpy's import needs): import from the repo root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402
from collections import defaultdict  # noqa: E402
from itertools import combinations  # noqa: E402

from bench.corpora import datasets_dir  # noqa: E402
from pipeline import documents  # noqa: E402
from pipeline.dedup import DedupConfig, run  # noqa: E402
from pipeline.stage import StageContext  # noqa: E402
from pipeline.store import Manifest  # noqa: E402

THRESHOLD = 0.8
NGRAM = 5
TARGETS = {"target_precision": 0.99, "target_recall": 0.98}


# ---- real documents -------------------------------------------------------------------------------------

def tinystories(folder: Path, min_words: int) -> list[str]:
    """Paragraph groups of the TinyStories slice (story boundaries are not recoverable), >= min_words each."""
    paragraphs = [p.strip() for p in (folder / "tinystories_slice/tinystories_val_head.txt").read_text().split("\n\n")]
    docs, cur = [], []
    for p in filter(None, paragraphs):
        cur.append(p)
        if sum(len(x.split()) for x in cur) >= min_words:
            docs.append("\n".join(cur))
            cur = []
    return docs


def wikitext(folder: Path, min_words: int, max_words: int = 250) -> list[str]:
    """WikiText-2 articles (split at top-level " = Title = " headings), cut into chunks of whole lines."""
    docs = []
    for name in ("test.txt", "valid.txt"):
        cur: list[str] = []
        for line in (folder / "wikitext2_tokenized" / name).read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            heading = re.fullmatch(r"= [^=].*[^=] =", line) is not None
            if cur and (heading or sum(len(x.split()) for x in cur) >= max_words):
                docs.append("\n".join(cur))
                cur = []
            cur.append(line)
        if cur:
            docs.append("\n".join(cur))
    return [d for d in docs if len(d.split()) >= min_words]


# ---- planted near-duplicates ----------------------------------------------------------------------------

def perturb(text: str, rate: float, vocab: list[str], rng: random.Random) -> str:
    """Edit about ``rate`` of the words (swap with the next, insert a corpus word, delete), and with
    probability 0.3 swap two neighbouring sentences."""
    if rng.random() < 0.3:
        sentences = re.split(r"(?<=[.!?])\s+", text)
        if len(sentences) > 2:
            i = rng.randrange(len(sentences) - 1)
            sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
            text = " ".join(sentences)
    words = text.split()
    for _ in range(max(1, round(rate * len(words)))):
        op, i = rng.choice(("swap", "insert", "delete")), rng.randrange(len(words) - 1)
        if op == "swap":
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "insert":
            words.insert(i, rng.choice(vocab))
        else:
            del words[i]
    return " ".join(words)


def build_corpus(n_base: int, copies: int, rates: tuple[float, float], n_other: int,
                 seed: int) -> list[str]:
    """``n_base`` documents with ``copies`` edited copies each (edit rate uniform in ``rates``) and
    ``n_other`` unrelated documents, shuffled into one stream."""
    folder = datasets_dir()
    rng = random.Random(seed)
    pool = tinystories(folder, 80) + wikitext(folder, 80)
    rng.shuffle(pool)
    assert len(pool) >= n_base + n_other, f"only {len(pool)} source documents"
    vocab = sorted({w for d in pool[:500] for w in d.split()})
    docs = []
    for base in pool[:n_base]:
        docs.append(base)
        docs += [perturb(base, rng.uniform(*rates), vocab, rng) for _ in range(copies)]
    docs += pool[n_base:n_base + n_other]
    rng.shuffle(docs)  # planted copies are scattered through the stream, as in a real crawl
    return docs


# ---- ground truth (independent of the stage's code) -----------------------------------------------------

def shingle_set(text: str) -> frozenset:
    """Word 5-grams after lowercasing, NFD without marks, punctuation removed and digits folded to 0."""
    t = unicodedata.normalize("NFD", text.lower())
    t = re.sub(r"[^\w\s]|_", "", t)
    words = re.sub(r"\d", "0", t).split()
    if len(words) < NGRAM:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1))


def jac(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def truth_pairs(sets: list[frozenset], t: float) -> dict[tuple[int, int], float]:
    """All pairs with Jaccard >= t, exactly: prefix filtering (a pair at >= t shares a token among the
    first |S| - floor(t·|S|) + 1 rarest tokens of each set), then exact verification."""
    freq: dict = defaultdict(int)
    for s in sets:
        for g in s:
            freq[g] += 1
    index: dict = defaultdict(list)
    cands = set()
    for i, s in enumerate(sets):
        prefix = sorted(s, key=lambda g: (freq[g], g))[:len(s) - math.floor(t * len(s)) + 1]
        for g in prefix:
            for j in index[g]:
                cands.add((j, i))
            index[g].append(i)
    out = {}
    for i, j in cands:
        sim = jac(sets[i], sets[j])
        if sim >= t:
            out[(i, j)] = sim
    return out


# ---- systems under test ---------------------------------------------------------------------------------

def same_cluster_pairs(labels: list[int]) -> set[tuple[int, int]]:
    groups = defaultdict(list)
    for i, c in enumerate(labels):
        groups[c].append(i)
    return {p for g in groups.values() if len(g) > 1 for p in combinations(g, 2)}


def run_stage(docs: list[str], cfg: DedupConfig, shard_docs: int = 500) -> tuple[list[int], dict]:
    with tempfile.TemporaryDirectory() as tmp:
        up = Path(tmp) / "clean"
        (up / "docs").mkdir(parents=True)
        for s in range(0, len(docs), shard_docs):
            rows = [{"doc_id": f"d{i}", "text": docs[i], "source": "bench", "meta": "{}"}
                    for i in range(s, min(s + shard_docs, len(docs)))]
            documents.write_table(documents.docs_table(rows), up / documents.shard_name(s // shard_docs))
        manifest = Manifest(stage="clean", key="bench", version="1", config={}, inputs={}, files={}, path=up)
        ctx = StageContext(name="dedup", key="bench", out=Path(tmp) / "dedup", inputs={"docs": manifest})
        stats = run(cfg, ctx)
        labels = [c for t in documents.iter_tables(ctx.out, columns=["cluster_id"], kept_only=False)
                  for c in t.column("cluster_id").to_pylist()]
    return labels, stats


def run_datasketch(docs: list[str], num_perm: int) -> list[int]:
    """datasketch MinHashLSH(threshold=0.8): index every document, query each, union the results."""
    from datasketch import MinHash, MinHashLSH
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=num_perm)
    shingles = [[" ".join(g).encode() for g in shingle_set(d)] for d in docs]
    mhs = MinHash.bulk(shingles, num_perm=num_perm)
    for i, m in enumerate(mhs):
        lsh.insert(i, m)
    parent = list(range(len(docs)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(docs))]


def score(pred: set, truth: dict, sets: list[frozenset]) -> dict:
    hit = len(pred & truth.keys())
    false_pos = [jac(sets[i], sets[j]) for i, j in pred - truth.keys()]
    return {"precision": hit / len(pred) if pred else 1.0, "recall": hit / len(truth) if truth else 1.0,
            "pairs": len(pred), "false_pairs": len(false_pos),
            "false_pairs_jaccard_ge_0.7": sum(s >= 0.7 for s in false_pos)}


def recall_by_bin(pred: set, truth: dict) -> dict[str, float]:
    out = {}
    for lo in (0.8, 0.85, 0.9, 0.95):
        pairs = [p for p, s in truth.items() if lo <= s < lo + 0.05 or (lo == 0.95 and s == 1.0)]
        out[f"{lo:.2f}"] = round(sum(p in pred for p in pairs) / len(pairs), 4) if pairs else None
    return out


def evaluate(docs: list[str], label: str) -> dict:
    """Ground truth, then the stage and datasketch on the same documents."""
    sets = [shingle_set(d) for d in docs]
    t0 = time.perf_counter()
    truth = truth_pairs(sets, THRESHOLD)
    print(f"[{label}] documents: {len(docs)}  true pairs at J>={THRESHOLD}: {len(truth)}  "
          f"ground truth in {time.perf_counter() - t0:.1f}s")
    cfg = DedupConfig()
    t0 = time.perf_counter()
    labels, stats = run_stage(docs, cfg)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base_labels = run_datasketch(docs, cfg.num_perm)
    t_base = time.perf_counter() - t0
    raw_labels, _ = run_stage(docs, DedupConfig(verify=False))
    pred, base_pred = same_cluster_pairs(labels), same_cluster_pairs(base_labels)
    ours, base = score(pred, truth, sets), score(base_pred, truth, sets)
    raw = score(same_cluster_pairs(raw_labels), truth, sets)
    print(f"[{label}] ours (b={stats['bands']}, r={stats['rows']}, verified): P={ours['precision']:.4f} "
          f"R={ours['recall']:.4f} pairs={ours['pairs']} (J<0.8: {ours['false_pairs']}, of which J>=0.7: "
          f"{ours['false_pairs_jaccard_ge_0.7']}) candidates={stats['candidate_pairs']} "
          f"verified={stats['verified_pairs']} {t_ours:.1f}s  recall by J bin {recall_by_bin(pred, truth)}")
    print(f"[{label}] ours without verification: P={raw['precision']:.4f} R={raw['recall']:.4f} "
          f"pairs={raw['pairs']}")
    print(f"[{label}] datasketch MinHashLSH(0.8, {cfg.num_perm}): P={base['precision']:.4f} "
          f"R={base['recall']:.4f} pairs={base['pairs']} {t_base:.1f}s  "
          f"recall by J bin {recall_by_bin(base_pred, truth)}")
    return {"docs": len(docs), "truth": truth, "ours": ours, "base": base, "raw": raw, "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="twice as many documents")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not datasets_dir().exists():
        print(f"datasets not found at {datasets_dir()}; set LMFORGE_DATASETS")
        sys.exit(2)
    scale = 2 if args.long else 1
    main_run = evaluate(build_corpus(400 * scale, 1, (0.001, 0.05), 1000 * scale, args.seed), "main")
    fam = evaluate(build_corpus(100 * scale, 3, (0.001, 0.02), 500 * scale, args.seed + 1), "families")
    ours, base, raw = main_run["ours"], main_run["base"], main_run["raw"]
    result = {
        "bench": "dedup_quality", "docs": main_run["docs"], "true_pairs": len(main_run["truth"]),
        "precision": round(ours["precision"], 4), "recall": round(ours["recall"], 4),
        "bands": main_run["stats"]["bands"], "rows": main_run["stats"]["rows"],
        "unverified_precision": round(raw["precision"], 4), "unverified_recall": round(raw["recall"], 4),
        "baseline": f"datasketch MinHashLSH(threshold=0.8, num_perm={DedupConfig().num_perm})",
        "baseline_precision": round(base["precision"], 4), "baseline_recall": round(base["recall"], 4),
        "family_precision": round(fam["ours"]["precision"], 4), "family_recall": round(fam["ours"]["recall"], 4),
        "family_baseline_precision": round(fam["base"]["precision"], 4),
        "family_baseline_recall": round(fam["base"]["recall"], 4),
        **TARGETS,
        "met": ours["precision"] >= TARGETS["target_precision"] and ours["recall"] >= TARGETS["target_recall"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
