"""MinHash signature throughput: the dedup stage's numpy kernel against datasketch, and 2 workers vs 1.

Documents are WikiText-2 and TinyStories text regrouped into ~2.5 KB pieces. All systems use 128
permutations and word 5-grams of the same simplified text, and all start from the raw text:
- ours: simplification, vectorized word/5-gram hashing and the (num_perm × shingles) permutation min,
  in batches of 32 documents (``pipeline.dedup.shards.shingles_in_batches`` + ``minhash.signatures``);
- datasketch ``MinHash.update`` once per shingle, and ``MinHash.bulk`` (one ``update_batch`` per document),
  both with their default hash function (sha1), after building the 5-gram byte strings in Python. The
  bulk figure without that string building is printed too.
- workers: the stage's real signature pass (Parquet shard in, Arrow signature file out) over 8 shards,
  with one in-process worker vs a warm pool of 2 processes.
Rounds are interleaved so that load from other processes hits every system alike; medians are reported.
Single-process rates are per CPU-second of this process (``time.process_time``): on a shared machine
that is the per-core rate; the wall-clock rates are printed beside them. The 2-worker speedup is wall-clock
and can only be as good as the machine's free capacity, so a control runs a pure-Python spin loop in the
same pool: ``machine_speedup_2_processes`` is what 2 processes got from the machine in the same rounds.

    python bench/dedup_speed.py            # ~1 minute
    python bench/dedup_speed.py --long     # more documents and rounds
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
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.corpora import datasets_dir, english_lines, pieces  # noqa: E402
from pipeline import documents  # noqa: E402
from pipeline.dedup import DedupConfig, lsh_params  # noqa: E402
from pipeline.dedup import minhash  # noqa: E402
from pipeline.dedup.shards import ShardPool, SignatureTask, shingles_in_batches, signature_shard, spec_of  # noqa: E402
from pipeline.dedup.text import simplify  # noqa: E402

NUM_PERM = 128
TARGETS = {"target_docs_per_s_per_core": 3000, "target_speedup_vs_bulk": 2.5, "target_speedup_2_workers": 1.7}


def load_docs(target_bytes: int = 2500) -> list[str]:
    return pieces(english_lines(), target_bytes)


def ours(texts: list[str], cfg: DedupConfig) -> None:
    perms = minhash.permutations(cfg.num_perm, cfg.seed, cfg.scheme)
    for sh in shingles_in_batches(texts, spec_of(cfg)):
        minhash.signatures(sh.hashes, sh.offsets, perms, cfg.scheme)


def byte_shingles(text: str) -> list[bytes]:
    words = simplify(text).split()
    return [b" ".join(words[i:i + 5]) for i in range(max(1, len(words) - 4))]


def ds_update(texts: list[str]) -> None:
    from datasketch import MinHash
    for t in texts:
        m = MinHash(num_perm=NUM_PERM)
        for s in byte_shingles(t):
            m.update(s)


def ds_bulk(texts: list[str]) -> None:
    from datasketch import MinHash
    MinHash.bulk([byte_shingles(t) for t in texts], num_perm=NUM_PERM)


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0


def spin(n: int) -> int:
    """Pure-Python CPU work for the machine-capacity control."""
    return sum(i * i % 7 for i in range(n))


def write_shards(docs: list[str], folder: Path, n_shards: int) -> list[str]:
    (folder / "docs").mkdir(parents=True)
    per = -(-len(docs) // n_shards)
    paths = []
    for i in range(n_shards):
        rows = [{"doc_id": f"d{j}", "text": docs[j], "source": "bench", "meta": "{}"}
                for j in range(i * per, min((i + 1) * per, len(docs)))]
        documents.write_table(documents.docs_table(rows), folder / documents.shard_name(i))
        paths.append(str(folder / documents.shard_name(i)))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="more documents and rounds")
    args = ap.parse_args()
    if not datasets_dir().exists():
        print(f"datasets not found at {datasets_dir()}; set LMFORGE_DATASETS")
        sys.exit(2)
    rounds, copies = (7, 8) if args.long else (5, 4)
    docs = load_docs()
    cfg = DedupConfig(num_perm=NUM_PERM)
    bands, rows = lsh_params(cfg)
    sub = docs[:150]  # per-shingle update is ~100x slower; a slice keeps the round short
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"{len(docs)} docs, {mb:.2f} MB, mean {mb * 1e6 / len(docs):.0f} B/doc; num_perm={NUM_PERM}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ours(docs[:64], cfg)  # warm-up: permutation tables, power tables, lazy imports
    ds_bulk(docs[:8])

    with tempfile.TemporaryDirectory() as tmp:
        tasks = [SignatureTask(p, cfg, bands, rows) for p in write_shards(docs * copies, Path(tmp), 8)]
        n_pool_docs = len(docs) * copies
        rates: dict[str, list[float]] = {k: [] for k in ("ours", "ours_wall", "bulk", "bulk_only", "update",
                                                         "w1", "w2", "spin1", "spin2")}
        spins = [1_500_000] * 8
        with ShardPool(2) as pool:
            list(pool.map(signature_shard, tasks[:2]))  # start both workers before timing
            for r in range(rounds):
                prebuilt = [byte_shingles(t) for t in docs]
                from datasketch import MinHash
                wall, cpu = timed(ours, docs, cfg)
                rates["ours"].append(len(docs) / cpu)
                rates["ours_wall"].append(len(docs) / wall)
                rates["bulk"].append(len(docs) / timed(ds_bulk, docs)[1])
                rates["bulk_only"].append(len(docs) / timed(lambda: MinHash.bulk(prebuilt, num_perm=NUM_PERM))[1])
                rates["update"].append(len(sub) / timed(ds_update, sub)[1])
                pair = [("w1", n_pool_docs, lambda: [signature_shard(t) for t in tasks]),
                        ("w2", n_pool_docs, lambda: list(pool.map(signature_shard, tasks))),
                        ("spin1", len(spins), lambda: [spin(n) for n in spins]),
                        ("spin2", len(spins), lambda: list(pool.map(spin, spins)))]
                for name, count, fn in (pair if r % 2 == 0 else pair[::-1]):
                    rates[name].append(count / timed(fn)[0])
                print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()
                                                     if not k.startswith("spin")) + " docs/s")
    med = {k: statistics.median(v) for k, v in rates.items()}
    machine = med["spin2"] / med["spin1"]
    print(f"ours:                          {med['ours']:8,.0f} docs/s/core  ({med['ours'] * mb / len(docs):.1f} MB/s; "
          f"wall-clock {med['ours_wall']:,.0f} docs/s)")
    print(f"datasketch MinHash.bulk:       {med['bulk']:8,.0f} docs/s/core  (without shingle building "
          f"{med['bulk_only']:,.0f})")
    print(f"datasketch MinHash.update:     {med['update']:8,.0f} docs/s/core")
    print(f"stage signature pass: 1 worker {med['w1']:,.0f} docs/s, 2 workers {med['w2']:,.0f} docs/s "
          f"(x{med['w2'] / med['w1']:.2f}); the machine gave 2 spinning processes x{machine:.2f}")
    result = {
        "bench": "dedup_speed", "docs": len(docs), "mean_doc_bytes": round(mb * 1e6 / len(docs)), "num_perm": NUM_PERM,
        "docs_per_s_per_core": round(med["ours"]), "mb_per_s_per_core": round(med["ours"] * mb / len(docs), 2),
        "docs_per_s_wall": round(med["ours_wall"]),
        "baseline": "datasketch 2.0 MinHash.bulk / MinHash.update (sha1), same shingles",
        "baseline_bulk_docs_per_s": round(med["bulk"]), "baseline_bulk_only_docs_per_s": round(med["bulk_only"]),
        "baseline_update_docs_per_s": round(med["update"]),
        "speedup_vs_bulk": round(med["ours"] / med["bulk"], 2),
        "speedup_vs_bulk_only": round(med["ours"] / med["bulk_only"], 2),
        "speedup_vs_update": round(med["ours"] / med["update"], 1),
        "one_worker_docs_per_s": round(med["w1"]), "two_workers_docs_per_s": round(med["w2"]),
        "speedup_2_workers": round(med["w2"] / med["w1"], 2),
        "machine_speedup_2_processes": round(machine, 2),
        "speedup_2_workers_relative_to_machine": round(med["w2"] / med["w1"] / machine, 2),
        "load_average": round(os.getloadavg()[0], 2),
        **TARGETS,
        "met": (med["ours"] >= TARGETS["target_docs_per_s_per_core"]
                and med["ours"] / med["bulk"] >= TARGETS["target_speedup_vs_bulk"]
                and med["w2"] / med["w1"] >= TARGETS["target_speedup_2_workers"]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
