"""The drift job of LLM traffic: the text statistics of recent chats against the training data's.

The request log's latest `monitoring.window` chats (and any request-log files passed, e.g. one a
gateway in front of vLLM wrote) against the training conversations: prompt and completion lengths
in the served tokenizer's tokens, non-ASCII and out-of-vocabulary shares, refusals and empty
answers (text_stats.py). Evidently's DataDriftPreset tests each statistic as a column, as the
tabular job tests features, and the outputs are the tabular job's: report.html, summary.json and
scores.png in reports/drift/, and the drift_* gauges the DataDriftDetected alert reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import jsonl
from ..config import Settings
from ..console import console
from ..errors import ProjectError
from . import drift_outputs as outputs
from .drift_outputs import relative
from .evidently_drift import evidently_report
from .text_stats import OOV, STATS, Stat, describe, oov_share, prompt_text, token_counter, words

JOB = "drift"


@dataclass(frozen=True)
class TextColumns:
    """The statistics tested, as the Evidently engine reads a feature spec."""

    features: list[Stat]
    categorical: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [stat.name for stat in self.features]


@dataclass(frozen=True)
class Traffic:
    frame: pd.DataFrame  # one row per chat, the STATS (and OOV when every chat has its text)
    sources: list[str]
    notes: list[str]


def run(settings: Settings, files: Sequence[Path] = ()) -> dict[str, Any]:
    """Test recent traffic for drift; write report, summary and plot; export the gauges."""
    tokenizer, adapter = served_tokenizer(settings)
    reference, vocabulary = reference_stats(settings, tokenizer)
    current = read_traffic(settings, files, vocabulary)
    for note in current.notes:
        console.print(f"[yellow]Warning:[/] {note}")
    columns = TextColumns([Stat(name) for name in current.frame.columns])
    out = settings.report_dir(JOB)
    out.mkdir(parents=True, exist_ok=True)
    html = out / "report.html"
    result, snapshot = evidently_report(
        reference[columns.names], current.frame, columns, settings.monitoring
    )
    snapshot.save_html(str(html))
    summary = outputs.summarise(
        result, len(reference), len(current.frame), current.sources, current.notes
    )
    root = settings.root
    summary["reference"] = relative(settings.prepared_dir / "train.jsonl", root)
    summary["tokenizer"] = relative(adapter, root)
    return outputs.publish(summary, result, html, settings, JOB)


def served_tokenizer(settings: Settings) -> tuple[Any, Path]:
    """The tokenizer saved with the served adapter: the one the server counts tokens with."""
    from transformers import AutoTokenizer

    from ..serving.champion import fetch_adapter

    _, folder = fetch_adapter(settings)
    return AutoTokenizer.from_pretrained(folder), folder


def reference_stats(settings: Settings, tokenizer: Any) -> tuple[pd.DataFrame, set[str]]:
    """The training conversations' statistics, and the words of their prompts."""
    from ..data.prepare import load_prepared

    count = token_counter(tokenizer)
    markers = settings.monitoring.refusal_markers
    chats = [split_chat(record) for record in load_prepared(settings).train]
    frame = pd.DataFrame([describe(prompt, answer, count, markers) for prompt, answer in chats])
    # A training prompt's own words are in the vocabulary by construction: its OOV share is
    # taken against the other prompts' words (a word only it holds counts as unseen), so the
    # reference varies as unseen traffic from the same source does.
    prompts = [set(words(prompt)) for prompt, _ in chats]
    holders = Counter(word for found in prompts for word in found)
    frame[OOV] = [
        sum(holders[word] == 1 for word in words(prompt)) / max(len(words(prompt)), 1)
        for prompt, _ in chats
    ]
    return frame, set(holders)


def split_chat(record: dict[str, Any]) -> tuple[str, str]:
    """(prompt, completion) of a training record: chat messages, or a DPO pair's chosen side."""
    if "messages" in record:
        *prompt, answer = record["messages"]
        return prompt_text(prompt), str(answer.get("content", ""))
    prompt, chosen = record["prompt"], record["chosen"]
    prompt = prompt if isinstance(prompt, str) else prompt_text(prompt)
    return prompt, chosen if isinstance(chosen, str) else prompt_text(chosen)


def read_traffic(settings: Settings, files: Sequence[Path], vocabulary: set[str]) -> Traffic:
    """The statistics the server logged for the latest window, and for each file given."""
    window = settings.monitoring.window
    logs = [jsonl.tail(settings.request_log, window)] + [_read(path) for path in files]
    rows, notes, sources = [], [], []
    for lines in logs:
        sources.append(relative(lines.path, settings.root))
        if note := lines.note():
            notes.append(note)
        usable = [row for row in lines if _has_stats(row)]
        if len(usable) < len(lines):
            notes.append(f"{sources[-1]}: {len(lines) - len(usable)} line(s) carry no text stats")
        rows += usable
    minimum = settings.monitoring.min_rows
    if len(rows) < minimum:
        raise ProjectError(
            f"Only {len(rows):,} logged chats in {', '.join(sources)}, fewer than "
            f"monitoring.min_rows ({minimum:,}): too few to tell drift from noise. Serve more "
            "traffic, or lower monitoring.min_rows in params.yaml."
        )
    frame = pd.DataFrame([{name: float(row["stats"][name]) for name in STATS} for row in rows])
    if all(isinstance(row.get("prompt"), str) for row in rows):
        frame[OOV] = [oov_share(row["prompt"], vocabulary) for row in rows]
    else:
        notes.append(f"{OOV} not tested: some chats were logged without their text")
    return Traffic(frame, sources, notes)


def _has_stats(row: dict[str, Any]) -> bool:
    stats = row.get("stats")
    return isinstance(stats, dict) and all(
        isinstance(stats.get(name), int | float) for name in STATS
    )


def _read(path: Path) -> jsonl.Lines:
    if not path.is_file():
        raise ProjectError(f"Request log {path} does not exist.")
    return jsonl.read(path)
