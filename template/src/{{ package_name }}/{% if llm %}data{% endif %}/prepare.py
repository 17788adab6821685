"""prepare: the conversations to fine-tune on, validated, cleaned, split, fingerprinted."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..console import console
from ..errors import ProjectError
from . import builtin_chat
from .conversations import DataFileError, load_jsonl
from .quality import (
    QualityResult,
    TokenCounter,
    record_tokens,
    render_table,
    run_quality,
    tokenizer_counter,
    write_report,
)

FILES = {"train": "train.jsonl", "test": "test.jsonl", "preferences": "preferences.jsonl"}


@dataclass
class Prepared:
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    # sft_dpo: the DPO stage's pairs (the SFT stage trains on `train`).
    preferences: list[dict[str, Any]]
    dataset: dict[str, Any]


def kind_of(method: str) -> str:
    """The record kind a method trains on first: preference pairs for dpo, chats otherwise."""
    return "dpo" if method == "dpo" else "sft"


def prepare(settings: Settings) -> Prepared:
    """Load the data, run the quality stage, split it, write data/prepared/ and the report."""
    from ..training.base import load_tokenizer

    kind = kind_of(settings.model.method)
    records, source, invalid = _load(settings, kind, settings.data_path)
    counter = tokenizer_counter(load_tokenizer(settings))
    quality = settings.quality
    result = run_quality(
        records,
        kind,
        counter,
        quality.min_tokens,
        quality.max_tokens,
        quality.near_duplicate_threshold,
        seed=settings.data.seed,
    )
    result.report["source"] = source
    if invalid:  # data.drop_invalid: what the schema refused, beside what quality dropped
        result.report["invalid"] = {
            "count": len(invalid),
            "samples": [{"line": line, "problems": text} for line, text in invalid[:5]],
        }
        console.print(
            f"[yellow]Dropped {len(invalid):,} invalid record(s)[/] of {source} "
            f"(data.drop_invalid); the first, line {invalid[0][0]}: {invalid[0][1]}"
        )
    _warn_truncation(settings, result, kind, counter)
    write_report(result.report, settings.quality_report)
    console.print(render_table(result.report))
    kept = result.kept
    if len(kept) < 10:
        raise ProjectError(
            f"Only {len(kept)} records of {source} survive the quality stage (see "
            f"{settings.quality_report}): too few to fine-tune and evaluate."
        )
    rng = random.Random(settings.data.seed)
    order = list(range(len(kept)))
    rng.shuffle(order)
    cut = max(1, round(len(kept) * settings.data.test_size))
    test, train = [kept[i] for i in order[:cut]], [kept[i] for i in order[cut:]]
    preferences = _preferences(settings) if settings.model.method == "sft_dpo" else []
    dataset = {
        "source": source,
        "kind": kind,
        "rows": len(kept),
        "sha256": _fingerprint([*kept, *preferences]),
        "quality_report": settings.quality_report.name,
    }
    _write(settings.prepared_dir, {"train": train, "test": test, "preferences": preferences})
    (settings.prepared_dir / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return Prepared(train, test, preferences, dataset)


def load_prepared(settings: Settings) -> Prepared:
    """Read what `prepare` wrote; tells the user to run it first when it is missing."""
    folder = settings.prepared_dir
    if not (folder / "dataset.json").is_file():
        raise ProjectError(f"No prepared data in {folder}: run the 'prepare' step first.")
    parts = {name: _read(folder / file) for name, file in FILES.items()}
    return Prepared(**parts, dataset=json.loads((folder / "dataset.json").read_text()))


def _load(
    settings: Settings, kind: str, path: Path | None
) -> tuple[list[dict[str, Any]], str, list[tuple[int, str]]]:
    """The records, where they came from, and the (line, problems) data.drop_invalid left out."""
    invalid: list[tuple[int, str]] = []
    if path is not None:
        skipped = invalid if settings.data.drop_invalid else None
        try:
            return load_jsonl(path, kind, skipped=skipped), str(path), invalid
        except DataFileError as exc:
            if skipped is not None or not any(line for line, _ in exc.problems):
                raise  # not bad records: an encoding or an empty file
            raise ProjectError(
                f"{exc}\nOr set data.drop_invalid: true to train on the valid records only "
                f"(the dropped ones are counted in {settings.quality_report.name})."
            ) from None
    rows, seed = settings.data.builtin_rows, settings.data.seed
    if kind == "dpo":
        records = builtin_chat.preference_records(rows, seed)
        return records, f"builtin:preferences?rows={rows}", invalid
    records = builtin_chat.sft_records(rows, seed)
    return records, f"builtin:support-chats?rows={rows}&seed={seed}", invalid


def _warn_truncation(
    settings: Settings, result: QualityResult, kind: str, counter: TokenCounter
) -> None:
    """Records longer than train.max_length lose their end (the answer) in training: say so."""
    limit = settings.train.max_length
    if settings.quality.max_tokens <= limit:
        return
    longer = sum(record_tokens(record, kind, counter) > limit for record in result.kept)
    result.report["longer_than_train_max_length"] = longer
    if longer:
        console.print(
            f"[yellow]Warning:[/] {longer:,} kept record(s) exceed train.max_length ({limit} "
            f"tokens) and will be cut short in training: raise train.max_length, or lower "
            f"quality.max_tokens ({settings.quality.max_tokens}) to drop them instead."
        )


def _preferences(settings: Settings) -> list[dict[str, Any]]:
    path = settings.data.preference_path
    if path is not None:
        return load_jsonl(path if path.is_absolute() else settings.root / path, "dpo")
    if settings.data_path is not None:
        raise ProjectError(
            "method sft_dpo with your own data.path also needs data.preference_path (a JSONL "
            "of prompt/chosen/rejected pairs) for its DPO stage."
        )
    return builtin_chat.preference_records(settings.data.builtin_rows // 2, settings.data.seed)


def _fingerprint(records: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def _write(folder: Path, parts: dict[str, list[dict[str, Any]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in parts.items():
        lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        (folder / FILES[name]).write_text("".join(lines))


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
