"""The data-quality stage: exact and near duplicates, length filters, and a report.

:func:`run_quality` takes validated records (see :mod:`.conversations`) and drops,
in this order, each record for exactly one reason:

1. ``exact_duplicate``: same text as an earlier record after NFKC, case folding
   and whitespace collapsing (roles and system prompts included).
2. ``too_short`` / ``too_long``: fewer than ``min_tokens`` or more than
   ``max_tokens`` tokens by ``token_counter`` (SFT: all message contents joined
   by newlines; DPO: prompt+chosen and prompt+rejected, both must fit).
3. ``near_duplicate``: word-shingle Jaccard similarity >= ``near_dup_threshold``
   with an earlier *kept* record. MinHash LSH (datasketch) proposes candidates;
   the exact Jaccard of the shingle sets decides, so a drop is never a MinHash
   estimation error. System prompts are left out of the shingles: a dataset that
   shares one long system prompt must not collapse into "near duplicates".

The first record of a cluster is kept. The report is a JSON-serialisable dict
with counts per reason, totals (``total_in == total_out + total_dropped``) and a
few sample drops per reason; it is deterministic (no timings, no randomness
beyond ``seed``) so it can be a tracked pipeline output.

MinHash signatures are computed with numpy for all records at once, with the
same permutations and the same result as datasketch's ``MinHash(scheme="affine32")``
updated with our 32-bit shingle hashes (a test checks this), then wrapped in
``LeanMinHash`` for ``MinHashLSH``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import unicodedata
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from rich.table import Table

from ..errors import ProjectError

REASONS: tuple[str, ...] = ("exact_duplicate", "too_short", "too_long", "near_duplicate")
#: LSH candidate recall aimed for at exactly the threshold similarity (higher above it).
LSH_RECALL = 0.99
_SCHEME = "affine32"
_WORD_RE = re.compile(r"\w+")
_PAD = "\x00pad"
_PREVIEW_CHARS = 160
_CHUNK_SHINGLES = 8192  # shingles per numpy block: 8192 x 128 perms x 4 B = 4 MiB, cache-sized

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class QualityResult:
    """Records kept (input order), the report, their input indices, and diagnostics:
    seconds per step, plus ``near_dup_lsh_docs`` (records that went through the LSH index)."""

    kept: list[dict[str, Any]]
    report: dict[str, Any]
    kept_indices: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- record views


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the text compared for exact duplicates."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _parts(record: dict[str, Any], kind: str) -> list[tuple[str, str, str]]:
    """(field, role, content) for every message of a record, in order."""
    if kind == "sft":
        return [("messages", m["role"], m["content"]) for m in record["messages"]]
    out: list[tuple[str, str, str]] = []
    for name, default_role in (
        ("prompt", "user"),
        ("chosen", "assistant"),
        ("rejected", "assistant"),
    ):
        value = record[name]
        if isinstance(value, str):
            out.append((name, default_role, value))
        else:
            out.extend((name, m["role"], m["content"]) for m in value)
    return out


def _exact_key(parts: list[tuple[str, str, str]]) -> bytes:
    text = "\x1e".join(f"{f}\x1f{r}\x1f{normalize_text(c)}" for f, r, c in parts)
    return blake2b(text.encode("utf-8"), digest_size=16).digest()


def _length_texts(parts: list[tuple[str, str, str]], kind: str) -> list[str]:
    if kind == "sft":
        return ["\n".join(c for _, _, c in parts)]
    prompt = "\n".join(c for f, _, c in parts if f == "prompt")
    return [
        prompt + "\n" + "\n".join(c for f, _, c in parts if f == side)
        for side in ("chosen", "rejected")
    ]


def record_tokens(record: dict[str, Any], kind: str, token_counter: TokenCounter) -> int:
    """A record's length as the length filters count it (DPO: the longer side)."""
    return max(token_counter(text) for text in _length_texts(_parts(record, kind), kind))


def _words(parts: list[tuple[str, str, str]]) -> list[str]:
    """Near-duplicate tokens: a marker per turn, then its words; system prompts skipped.

    Empty when the turns hold no words at all (e.g. only emoji): such a record is
    never called a near duplicate (its markers alone would match any other).
    """
    words: list[str] = []
    n_markers = 0
    for f, r, c in parts:
        if r == "system":
            continue
        words.append(f"\x00{f}:{r}")
        n_markers += 1
        words.extend(_WORD_RE.findall(unicodedata.normalize("NFKC", c).casefold()))
    return words if len(words) > n_markers else []


def _preview(parts: list[tuple[str, str, str]]) -> str:
    text = " | ".join(f"{r}: {' '.join(c.split())}" for _, r, c in parts if r != "system")
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."


# --------------------------------------------------------------------------- hashing


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _word_hash(word: str) -> int:
    return int.from_bytes(blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def shingle_hashes(
    docs: Iterable[Sequence[str]],
    shingle_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """32-bit hashes of the word k-grams of each doc, concatenated; offsets; empty mask.

    Doc ``i`` owns ``hashes[offsets[i]:offsets[i + 1]]``. Docs shorter than k are
    padded, so every doc has at least one shingle; ``empty[i]`` marks docs with no
    words. Hashes depend only on the words (blake2b per distinct word, then a
    numpy mix), not on the process or the rest of the data. `docs` is consumed
    once and may be a generator: words are turned into 4-byte ids on the fly.
    """
    k = shingle_size
    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__  # new word -> next id
    lookup = vocab.__getitem__
    ids = array("I")
    lengths = array("q")
    empty = array("b")
    pad = [_PAD] * k
    for words in docs:
        n = len(words)
        empty.append(n == 0)
        if n < k:
            words = [*words, *pad[: k - n]]
        ids.extend(map(lookup, words))
        lengths.append(max(n, k))
    word_hashes = np.fromiter(map(_word_hash, vocab), dtype=np.uint64, count=len(vocab))
    del vocab
    ids_np = np.frombuffer(ids, dtype=np.uint32) if ids else np.zeros(0, dtype=np.uint32)
    lengths_np = np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, dtype=np.int64)
    n_docs = lengths_np.size
    word_ends = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths_np, out=word_ends[1:])
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths_np - (k - 1), out=offsets[1:])
    hashes = np.empty(int(offsets[-1]), dtype=np.uint32)
    d = 0
    while d < n_docs:  # blocks of whole docs, ~1M words: bounded temporaries
        e = int(np.searchsorted(word_ends, word_ends[d] + (1 << 20), side="right")) - 1
        e = min(max(e, d + 1), n_docs)
        hw = word_hashes[ids_np[word_ends[d] : word_ends[e]]]
        n = hw.size - k + 1
        h = hw[:n].copy()
        for j in range(1, k):
            h *= np.uint64(0x9E3779B97F4A7C15)
            h += hw[j : j + n]
        valid = np.ones(n, dtype=bool)
        local_ends = word_ends[d + 1 : e + 1] - word_ends[d]
        for j in range(1, k):  # a shingle may not start in the last k-1 words of a doc
            valid[local_ends[:-1] - j] = False
        hashes[offsets[d] : offsets[e]] = (_fmix64(h[valid]) >> np.uint64(32)).astype(np.uint32)
        d = e
    return hashes, offsets, np.frombuffer(empty, dtype=np.int8).astype(bool)


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        proto = MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME)
    except TypeError as exc:  # datasketch < 2.0 has no permutation schemes
        raise ProjectError(
            "the data-quality stage needs datasketch >= 2.0 (pip install 'datasketch>=2,<3')"
        ) from exc
    a, b = proto.permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


def minhash_signatures(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int
) -> np.ndarray:
    """(n_docs, num_perm) uint32 MinHash values, equal to datasketch's
    ``MinHash(num_perm, seed, scheme="affine32", hashfunc=int)`` updated with each
    doc's shingle hashes. Every doc must have at least one shingle.

    Works on blocks of whole docs of about :data:`_CHUNK_SHINGLES` shingles laid
    out (num_perm, shingles) so the block stays in cache and the per-doc minimum is
    one ``np.minimum.reduceat`` along the contiguous axis.
    """
    a, b = _permutations(num_perm, seed)
    a, b = a[:, None], b[:, None]
    pre = _fmix32(hashes.astype(np.uint32, copy=False))
    n_docs = offsets.size - 1
    out = np.empty((n_docs, num_perm), dtype=np.uint32)
    buf = np.empty((num_perm, _CHUNK_SHINGLES), dtype=np.uint32)
    d = 0
    while d < n_docs:
        e = int(np.searchsorted(offsets, offsets[d] + _CHUNK_SHINGLES, side="right")) - 1
        e = min(max(e, d + 1), n_docs)
        lo, hi = int(offsets[d]), int(offsets[e])
        if hi - lo > buf.shape[1]:  # one doc longer than a block
            buf = np.empty((num_perm, hi - lo), dtype=np.uint32)
        block = buf[:, : hi - lo]
        np.multiply(a, pre[None, lo:hi], out=block)
        block += b
        out[d:e] = np.minimum.reduceat(block, offsets[d:e] - lo, axis=1).T
        d = e
    return out


def lsh_params(threshold: float, num_perm: int, recall: float = LSH_RECALL) -> tuple[int, int]:
    """(bands, rows): the most rows per band whose candidate probability at `threshold`
    similarity is still >= `recall`. More rows = fewer dissimilar candidates to check."""
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def _candidate_probability(s: float, bands: int, rows: int) -> float:
    return 1.0 - (1.0 - s**rows) ** bands


def band_collisions(
    signatures: np.ndarray,
    bands: int,
    rows: int,
    include: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask of docs sharing at least one LSH band with another (included) doc.

    Band i of a doc is its hash values ``[i * rows, (i + 1) * rows)``, as in
    ``MinHashLSH``; two docs are LSH candidates exactly when some band is equal.
    Bands are compared by a 64-bit hash of their values: equal bands always match,
    and a rare hash collision only adds a doc to the mask, so a doc outside the
    mask can have no candidate in the index, and no doc can have it as one.
    """
    n = signatures.shape[0]
    include = np.ones(n, dtype=bool) if include is None else include
    sig = signatures[include].astype(np.uint64)
    hit = np.zeros(sig.shape[0], dtype=bool)
    for i in range(bands):
        key = np.zeros(sig.shape[0], dtype=np.uint64)
        for col in range(i * rows, (i + 1) * rows):
            key *= np.uint64(0x9E3779B97F4A7C15)
            key += sig[:, col]
        _, inverse, counts = np.unique(_fmix64(key), return_inverse=True, return_counts=True)
        hit |= counts[inverse] > 1
    out = np.zeros(n, dtype=bool)
    out[include] = hit
    return out


def near_duplicates(
    docs: Iterable[Sequence[str]],
    threshold: float,
    num_perm: int,
    seed: int,
    shingle_size: int,
    timings: dict[str, float] | None = None,
    *,
    prefilter: bool = True,
) -> tuple[dict[int, tuple[int, float]], tuple[int, int]]:
    """Greedy near-duplicate removal over `docs` (token lists) in order.

    Each doc is queried against a ``MinHashLSH`` of the docs kept so far; the
    candidates are checked by exact Jaccard of shingle sets and the doc is dropped
    as a duplicate of the most similar one (ties: the earliest) at or above
    `threshold`, else inserted. With `prefilter`, docs that share no LSH band with
    any other doc (found with numpy, see :func:`band_collisions`) skip the index:
    they can neither have nor be a candidate, so the result is the same.

    `docs` (token lists) is consumed once and may be a generator. Returns
    ({doc position: (position of the kept doc it duplicates, Jaccard)}, (bands, rows)).
    Empty docs are never near duplicates.
    """
    t0 = time.perf_counter()
    hashes, offsets, empty = shingle_hashes(docs, shingle_size)
    t1 = time.perf_counter()
    signatures = minhash_signatures(hashes, offsets, num_perm, seed)
    t2 = time.perf_counter()
    bands, rows = lsh_params(threshold, num_perm)
    non_empty = ~empty
    todo = band_collisions(signatures, bands, rows, non_empty) if prefilter else non_empty
    t3 = time.perf_counter()
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    sets: dict[int, np.ndarray] = {}

    def shingle_set(pos: int) -> np.ndarray:
        s = sets.get(pos)
        if s is None:
            s = sets[pos] = np.unique(hashes[offsets[pos] : offsets[pos + 1]])
        return s

    dups: dict[int, tuple[int, float]] = {}
    for pos in np.flatnonzero(todo).tolist():
        sketch = LeanMinHash(seed=seed, hashvalues=signatures[pos], scheme=_SCHEME)
        best: tuple[int, float] | None = None
        candidates = lsh.query(sketch)
        if candidates:
            mine = shingle_set(pos)
            for cand in candidates:
                other = shingle_set(cand)
                inter = np.intersect1d(mine, other, assume_unique=True).size
                jac = inter / (mine.size + other.size - inter)
                if jac >= threshold and (
                    best is None or jac > best[1] or (jac == best[1] and cand < best[0])
                ):
                    best = (cand, jac)
        if best is None:
            lsh.insert(pos, sketch, check_duplication=False)
        else:
            dups[pos] = best
            sets.pop(pos, None)
    if timings is not None:
        timings["near_dup_shingles"] = t1 - t0
        timings["near_dup_minhash"] = t2 - t1
        timings["near_dup_bands"] = t3 - t2
        timings["near_dup_lsh"] = time.perf_counter() - t3
        timings["near_dup_lsh_docs"] = float(todo.sum())
    return dups, (bands, rows)


# --------------------------------------------------------------------------- token counting


class _TokenizerCounter:
    """Counts tokens without special tokens; ``batch`` encodes many texts in one call."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)  # transformers fast tokenizer
        if backend is None and hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
            backend = tokenizer
        if backend is not None and (
            getattr(backend, "truncation", None) or getattr(backend, "padding", None)
        ):
            backend = None  # a configured truncation would cap the counts: use the slow, exact path
        self._backend = backend
        self._encode_batch = (
            (getattr(backend, "encode_batch_fast", None) or backend.encode_batch)
            if backend is not None
            else None
        )

    def __call__(self, text: str) -> int:
        return self.batch([text])[0]

    def batch(self, texts: list[str]) -> list[int]:
        if self._encode_batch is not None:
            return [len(e.ids) for e in self._encode_batch(texts, add_special_tokens=False)]
        ids = self._tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
        return [len(x) for x in ids]


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """A token counter for a ``tokenizers.Tokenizer`` or a transformers tokenizer.

    Counts tokens without special tokens. The returned callable also has a
    ``batch(texts) -> counts`` method, which :func:`run_quality` uses to encode
    1024 texts per call (in parallel, for Rust-backed tokenizers).
    """
    return _TokenizerCounter(tokenizer)


def _count_tokens(
    groups: Iterable[list[str]], token_counter: TokenCounter, batch_size: int = 1024
) -> Iterable[list[int]]:
    """Token counts per group of texts, batched when `token_counter` has ``.batch``."""
    batch = getattr(token_counter, "batch", None)
    if batch is None:
        for texts in groups:
            yield [int(token_counter(text)) for text in texts]
        return
    pending: list[list[str]] = []
    for texts in groups:
        pending.append(texts)
        if len(pending) >= batch_size:
            yield from _split_counts(pending, batch)
            pending = []
    if pending:
        yield from _split_counts(pending, batch)


def _split_counts(
    groups: list[list[str]], batch: Callable[[list[str]], list[int]]
) -> list[list[int]]:
    flat = [text for texts in groups for text in texts]
    counts = [int(c) for c in batch(flat)]
    if len(counts) != len(flat):
        raise ValueError(f"token_counter.batch returned {len(counts)} counts for {len(flat)} texts")
    out, pos = [], 0
    for texts in groups:
        out.append(counts[pos : pos + len(texts)])
        pos += len(texts)
    return out


# --------------------------------------------------------------------------- the stage


def _check_settings(
    kind: str,
    min_tokens: int,
    max_tokens: int,
    near_dup_threshold: float | None,
    num_perm: int,
    shingle_size: int,
    sample_size: int,
) -> None:
    if kind not in ("sft", "dpo"):
        raise ProjectError(f"unknown dataset kind {kind!r}; expected 'sft' or 'dpo'")
    if not isinstance(min_tokens, int) or min_tokens < 0:
        raise ProjectError(f"min_tokens must be a whole number >= 0, got {min_tokens!r}")
    if not isinstance(max_tokens, int) or max_tokens < max(min_tokens, 1):
        raise ProjectError(
            f"max_tokens must be a whole number >= max(min_tokens, 1), got {max_tokens!r} "
            f"(min_tokens is {min_tokens})"
        )
    if near_dup_threshold is not None and not 0.0 < near_dup_threshold <= 1.0:
        raise ProjectError(
            f"near_dup_threshold must be in (0, 1] or null to skip, got {near_dup_threshold!r}"
        )
    if not isinstance(num_perm, int) or num_perm < 16:
        raise ProjectError(f"num_perm must be a whole number >= 16, got {num_perm!r}")
    if not isinstance(shingle_size, int) or shingle_size < 1:
        raise ProjectError(f"shingle_size must be a whole number >= 1, got {shingle_size!r}")
    if sample_size < 0:
        raise ProjectError(f"sample_size must be >= 0, got {sample_size!r}")


def run_quality(
    records: Sequence[dict[str, Any]],
    kind: str,
    token_counter: TokenCounter,
    min_tokens: int,
    max_tokens: int,
    near_dup_threshold: float | None = 0.85,
    num_perm: int = 128,
    seed: int = 1234,
    *,
    shingle_size: int = 2,
    sample_size: int = 5,
) -> QualityResult:
    """Drop exact duplicates, length outliers and near duplicates; report why.

    `token_counter` maps a text to its token count (e.g. a tokenizer's length);
    if it has a ``batch(list[str]) -> list[int]`` method (see
    :func:`tokenizer_counter`) texts are counted 1024 at a time.
    `near_dup_threshold=None` skips near-duplicate removal. `shingle_size` is the
    word n-gram size: with 2, one word changed in a 30-word conversation still has
    Jaccard 27/31 = 0.87 with the original; with 3 it is 25/31 = 0.81.
    """
    _check_settings(
        kind, min_tokens, max_tokens, near_dup_threshold, num_perm, shingle_size, sample_size
    )
    timings: dict[str, float] = {}
    t = time.perf_counter()
    parts = [_parts(r, kind) for r in records]
    dropped: dict[int, tuple[str, dict[str, Any]]] = {}  # index -> (reason, details)

    # 1. exact duplicates
    first: dict[bytes, int] = {}
    survivors: list[int] = []
    for i, p in enumerate(parts):
        key = _exact_key(p)
        j = first.setdefault(key, i)
        if j != i:
            dropped[i] = ("exact_duplicate", {"duplicate_of": j})
        else:
            survivors.append(i)
    timings["exact_dup"] = time.perf_counter() - t

    # 2. length in tokens
    t = time.perf_counter()
    tokens: dict[int, int] = {}
    after_length: list[int] = []
    for i, counts in zip(
        survivors,
        _count_tokens((_length_texts(parts[i], kind) for i in survivors), token_counter),
        strict=True,
    ):
        if max(counts) > max_tokens:
            dropped[i] = ("too_long", {"tokens": max(counts), "limit": max_tokens})
        elif min(counts) < min_tokens:
            dropped[i] = ("too_short", {"tokens": min(counts), "limit": min_tokens})
        else:
            tokens[i] = max(counts)
            after_length.append(i)
    timings["length"] = time.perf_counter() - t

    # 3. near duplicates
    t = time.perf_counter()
    bands_rows: tuple[int, int] | None = None
    if near_dup_threshold is not None and after_length:
        docs = (_words(parts[i]) for i in after_length)
        dups, bands_rows = near_duplicates(
            docs, near_dup_threshold, num_perm, seed, shingle_size, timings
        )
        for pos, (of, jac) in dups.items():
            dropped[after_length[pos]] = (
                "near_duplicate",
                {"duplicate_of": after_length[of], "jaccard": round(jac, 4)},
            )
    timings["near_dup"] = time.perf_counter() - t

    kept_indices = [i for i in after_length if i not in dropped]
    report = _report(
        kind,
        len(records),
        kept_indices,
        dropped,
        parts,
        tokens,
        sample_size,
        {
            "min_tokens": min_tokens,
            "max_tokens": max_tokens,
            "near_dup_threshold": near_dup_threshold,
            "num_perm": num_perm,
            "seed": seed,
            "shingle_size": shingle_size,
            "lsh_bands": bands_rows[0] if bands_rows else None,
            "lsh_rows": bands_rows[1] if bands_rows else None,
            "lsh_recall_at_threshold": (
                round(_candidate_probability(near_dup_threshold, *bands_rows), 4)
                if bands_rows and near_dup_threshold is not None
                else None
            ),
        },
    )
    timings["total"] = sum(
        v for k, v in timings.items() if k in ("exact_dup", "length", "near_dup")
    )
    return QualityResult([records[i] for i in kept_indices], report, kept_indices, timings)


def _report(
    kind: str,
    total_in: int,
    kept: list[int],
    dropped: dict[int, tuple[str, dict[str, Any]]],
    parts: list[list[tuple[str, str, str]]],
    tokens: dict[int, int],
    sample_size: int,
    settings: dict[str, Any],
) -> dict[str, Any]:
    counts = dict.fromkeys(REASONS, 0)
    samples: dict[str, list[dict[str, Any]]] = {r: [] for r in REASONS}
    for i in sorted(dropped):
        reason, details = dropped[i]
        counts[reason] += 1
        if len(samples[reason]) < sample_size:
            samples[reason].append({"index": i, **details, "preview": _preview(parts[i])})
    kept_tokens = [tokens[i] for i in kept]
    return {
        "kind": kind,
        "total_in": total_in,
        "total_out": len(kept),
        "total_dropped": len(dropped),
        "dropped": counts,
        "samples": samples,
        "kept_tokens": {
            "min": min(kept_tokens) if kept_tokens else None,
            "max": max(kept_tokens) if kept_tokens else None,
            "mean": round(sum(kept_tokens) / len(kept_tokens), 2) if kept_tokens else None,
            "total": sum(kept_tokens),
        },
        "settings": settings,
    }


# --------------------------------------------------------------------------- output


def write_report(report: dict[str, Any], json_path: str | os.PathLike[str]) -> Path:
    """Write the report as indented UTF-8 JSON (atomically). Returns the path."""
    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_REASON_LABELS = {
    "exact_duplicate": "exact duplicate",
    "too_short": "too short",
    "too_long": "too long",
    "near_duplicate": "near duplicate",
}


def _example(reason: str, sample: dict[str, Any]) -> str:
    i = sample["index"]
    if reason == "exact_duplicate":
        return f"#{i} = #{sample['duplicate_of']}"
    if reason == "near_duplicate":
        return f"#{i} ~ #{sample['duplicate_of']} (Jaccard {sample['jaccard']:.2f})"
    op = "<" if reason == "too_short" else ">"
    return f"#{i}: {sample['tokens']} tokens {op} {sample['limit']}"


def render_table(report: dict[str, Any]) -> Table:
    """A rich table of the report: input, each drop reason with a share and an example, kept."""
    total = report["total_in"]

    def share(n: int) -> str:
        return f"{100.0 * n / total:.1f}%" if total else "-"

    s = report["settings"]
    caption = f"tokens {s['min_tokens']}..{s['max_tokens']}"
    if s.get("near_dup_threshold") is not None:
        caption += (
            f", near-dup Jaccard >= {s['near_dup_threshold']} "
            f"(word {s['shingle_size']}-grams, {s['num_perm']} perms)"
        )
    else:
        caption += ", near-dup off"
    table = Table(title=f"Data quality ({report['kind']})", caption=caption)
    table.add_column("", style="bold")
    table.add_column("records", justify="right")
    table.add_column("share", justify="right")
    table.add_column("example", overflow="fold")
    table.add_row("input", f"{total:,}", share(total) if total else "-", "")
    for reason in REASONS:
        n = report["dropped"][reason]
        examples = report["samples"].get(reason) or []
        table.add_row(
            f"- {_REASON_LABELS[reason]}",
            f"{n:,}",
            share(n),
            _example(reason, examples[0]) if examples else "",
        )
    table.add_row(
        "kept", f"{report['total_out']:,}", share(report["total_out"]), "", end_section=True
    )
    kt = report.get("kept_tokens") or {}
    if kt.get("mean") is not None:
        table.add_row(
            "tokens/record", "", "", f"min {kt['min']}, mean {kt['mean']}, max {kt['max']}"
        )
    return table
