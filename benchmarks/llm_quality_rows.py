"""Benchmark the data-quality stage on synthetic chat conversations.

    python benchmarks/llm_quality_rows.py                 # 100k rows, whitespace token counter
    python benchmarks/llm_quality_rows.py --tokenizer     # + a BPE tokenizer as the counter
    python benchmarks/llm_quality_rows.py --compare-bulk 2000   # + datasketch's MinHash.bulk

The data: ~5% exact duplicates (re-cased / re-spaced copies), ~5% near duplicates
(one word replaced), ~0.7% too short, ~0.3% too long, 30% sharing one of three
system prompts. Prints a table: rows, seconds, rows/s, drops per reason, peak RSS.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_project

llm_project.ensure()

from support_bot.data import quality  # noqa: E402
from support_bot.data.quality import render_table, run_quality, tokenizer_counter  # noqa: E402

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "su",
    "ta",
    "ri",
    "po",
    "ve",
    "da",
    "zu",
    "ch",
    "an",
    "el",
    "or",
    "is",
]


def _vocab(rng: np.random.Generator, size: int) -> list[str]:
    words: set[str] = set()  # 16 syllables, 2-5 of them: ~1.1M possible words
    while len(words) < size:
        n = int(rng.integers(2, 6))
        words.add("".join(rng.choice(SYLLABLES, n)))
    return sorted(words)


def make_conversations(rows: int, seed: int = 0) -> tuple[list[dict], dict[str, int]]:
    """Synthetic chat SFT records with planted duplicates; returns (records, planted counts)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_vocab(rng, 20_000))
    zipf = 1.0 / np.arange(1, vocab.size + 1) ** 1.05
    zipf /= zipf.sum()
    # Pre-draw a large pool of words; slices of it make the texts.
    pool = vocab[rng.choice(vocab.size, size=rows * 130, p=zipf)]
    cursor = 0

    def text(n: int) -> str:
        nonlocal cursor
        if cursor + n > pool.size:
            cursor = 0
        out = " ".join(pool[cursor : cursor + n])
        cursor += n
        return out.capitalize() + "."

    systems = [text(40) for _ in range(3)]
    records: list[dict] = []
    planted = {"exact": 0, "near": 0, "short": 0, "long": 0}
    for i in range(rows):
        roll = rng.random()
        if i > 100 and roll < 0.05:  # exact duplicate, re-cased and re-spaced
            src = copy.deepcopy(records[int(rng.integers(0, i))])
            msg = src["messages"][-1]
            msg["content"] = "  " + msg["content"].upper().replace(" ", "   ") + "\n"
            records.append(src)
            planted["exact"] += 1
            continue
        if i > 100 and roll < 0.10:  # near duplicate: one word replaced in one turn
            src = copy.deepcopy(records[int(rng.integers(0, i))])
            turns = [m for m in src["messages"] if m["role"] != "system"]
            msg = turns[int(rng.integers(0, len(turns)))]
            words = msg["content"].split()
            words[int(rng.integers(0, len(words)))] = str(vocab[int(rng.integers(0, vocab.size))])
            msg["content"] = " ".join(words)
            records.append(src)
            planted["near"] += 1
            continue
        messages = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": systems[int(rng.integers(0, 3))]})
        if roll < 0.107:
            messages += [
                {"role": "user", "content": text(1)},
                {"role": "assistant", "content": text(2)},
            ]
            planted["short"] += 1
        elif roll < 0.110:
            messages += [
                {"role": "user", "content": text(30)},
                {"role": "assistant", "content": text(1500)},
            ]
            planted["long"] += 1
        else:
            for _ in range(int(rng.integers(1, 4))):
                messages.append({"role": "user", "content": text(int(rng.integers(8, 40)))})
                messages.append({"role": "assistant", "content": text(int(rng.integers(20, 120)))})
        records.append({"messages": messages})
    return records, planted


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def whitespace_tokens(text: str) -> int:
    return len(text.split())


def _bpe_counter(records: list[dict]):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=8000, special_tokens=["[UNK]"], show_progress=False)
    tok.train_from_iterator((m["content"] for r in records[:5000] for m in r["messages"]), trainer)
    return tok


def _bulk_seconds(records: list[dict], n: int, num_perm: int, seed: int) -> float:
    """Seconds for datasketch's own MinHash.bulk (sha1 per shingle) on the first n records."""
    from datasketch import MinHash

    docs = []
    for r in records[:n]:
        words = quality._words(quality._parts(r, "sft"))
        docs.append([" ".join(words[j : j + 2]).encode() for j in range(max(len(words) - 1, 1))])
    t = time.perf_counter()
    MinHash.bulk(docs, num_perm=num_perm, seed=seed)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-tokens", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument(
        "--tokenizer", action="store_true", help="also run with a BPE tokenizer as counter"
    )
    ap.add_argument(
        "--compare-bulk",
        type=int,
        default=0,
        metavar="N",
        help="also time datasketch MinHash.bulk on N records",
    )
    args = ap.parse_args()
    console = Console(width=150)

    t = time.perf_counter()
    records, planted = make_conversations(args.rows, args.seed)
    gen_s = time.perf_counter() - t
    words = sum(len(m["content"].split()) for r in records for m in r["messages"])
    console.print(
        f"generated {len(records):,} conversations ({words:,} words) in {gen_s:.1f}s; "
        f"planted {planted}"
    )

    counters = [("whitespace", whitespace_tokens)]
    if args.tokenizer:
        tok = _bpe_counter(records)
        counters.append(
            (
                "BPE, one text a call",
                lambda text: len(tok.encode(text, add_special_tokens=False).ids),
            )
        )
        counters.append(("BPE, tokenizer_counter", tokenizer_counter(tok)))

    table = Table(
        title=f"Data-quality stage, {len(records):,} synthetic conversations "
        f"(CPUs: {os.cpu_count()}, numpy {np.__version__})"
    )
    for col in (
        "token counter",
        "rows",
        "seconds",
        "rows/s",
        "exact",
        "too short",
        "too long",
        "near",
        "kept",
        "RSS before",
        "peak RSS",
    ):
        table.add_column(col, justify="right")
    stage_rows = []
    last = None
    for name, counter in counters:
        rss_before = _rss_kib("VmRSS")
        reset = _reset_peak_rss()
        t = time.perf_counter()
        result = run_quality(records, "sft", counter, args.min_tokens, args.max_tokens)
        secs = time.perf_counter() - t
        peak = _rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        d = result.report["dropped"]
        table.add_row(
            name,
            f"{len(records):,}",
            f"{secs:.2f}",
            f"{len(records) / secs:,.0f}",
            f"{d['exact_duplicate']:,}",
            f"{d['too_short']:,}",
            f"{d['too_long']:,}",
            f"{d['near_duplicate']:,}",
            f"{result.report['total_out']:,}",
            f"{rss_before / 1024:,.0f} MiB",
            f"{peak / 1024:,.0f} MiB" + ("" if reset else "*"),
        )
        stage_rows.append((name, result.timings))
        last = result
    console.print(table)

    timing = Table(title="seconds per step")
    timing.add_column("token counter")
    keys = list(stage_rows[0][1])
    for k in keys:
        timing.add_column(k, justify="right")
    for name, tm in stage_rows:
        timing.add_row(name, *(f"{tm.get(k, 0.0):.2f}" for k in keys))
    console.print(timing)
    console.print(render_table(last.report))

    if args.compare_bulk:
        n = min(args.compare_bulk, len(records))
        secs = _bulk_seconds(records, n, 128, 1234)
        ours = last.timings["near_dup_minhash"]
        console.print(
            f"signatures only, from ready shingles: datasketch MinHash.bulk (sha1 per shingle) "
            f"{n / secs:,.0f} rows/s ({n:,} rows in {secs:.2f}s, "
            f"~{secs * len(records) / n:.0f}s for {len(records):,}); "
            f"numpy here {len(records) / ours:,.0f} rows/s ({ours:.2f}s; shingle "
            f"hashing is in near_dup_shingles, with the word extraction)"
        )


if __name__ == "__main__":
    main()
