"""A trial on public chat data no one here wrote: ChatterBot's English corpus through the project.

    pip install chatterbot-corpus==1.3.3
    HF_HUB_OFFLINE=1 python benchmarks/llm_public_data.py [--corpus DIR] [--epochs 3]

chatterbot-corpus (PyPI) ships YAML conversations by category (greetings, computers, science,
...): a list of turns each answering the one before, with multi-line answers (code in coding.yml),
several answers to one question, and repeats across files. The script converts the English files
into the project's chat JSONL (user and assistant turns alternating), puts it in a fresh root of
the llm-tiny-local project (benchmarks/llm_project.py) as `data.path`, and runs what
`make train` runs: prepare (the data-quality stage), train and evaluate. It prints what the
stranger's data went through: rows in, drops by reason, tokens, train time and the loss before and
after fine-tuning. The conversion is mechanical, so some records break the project's schema (a
chain whose last turn has no answer, an empty turn): `data.drop_invalid: true` leaves them out
and counts them, where by default the loader would refuse the file naming its bad lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_project

PROJECT = llm_project.ensure()
PREFIX = "SUPPORT_BOT_"


def corpus_folder(given: Path | None) -> Path:
    """The English YAML files: --corpus, else the installed chatterbot_corpus package's."""
    if given is not None:
        return given
    spec = find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        sys.exit("chatterbot-corpus is not installed: pip install chatterbot-corpus, or --corpus")
    return Path(spec.origin).parent / "data" / "english"


def to_chat(turns: list[Any], category: str) -> dict[str, Any]:
    """One ChatterBot conversation as a chat record: each turn answers the previous one."""
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": turn} for i, turn in enumerate(turns)]
    return {"messages": messages, "category": category}


def convert(folder: Path, target: Path) -> int:
    """Write the corpus's conversations as JSONL, one a line; returns how many."""
    import yaml

    rows = 0
    with target.open("w", encoding="utf-8") as out:
        for path in sorted(folder.glob("*.yml")):
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            for turns in document.get("conversations") or []:
                out.write(json.dumps(to_chat(turns, path.stem), ensure_ascii=False) + "\n")
                rows += 1
    return rows


def fine_tune(root: Path, epochs: float) -> dict[str, Any]:
    """prepare, train and evaluate in `root` (data.path set): what each reported, and timings."""
    from support_bot.config import load_settings
    from support_bot.data.prepare import prepare
    from support_bot.data.quality import tokenizer_counter
    from support_bot.tracking import connect
    from support_bot.training.base import base_model, load_tokenizer
    from support_bot.training.evaluate import evaluate
    from support_bot.training.train import train

    os.environ[f"{PREFIX}TRAIN__EPOCHS"] = str(epochs)
    os.environ[f"{PREFIX}DATA__DROP_INVALID"] = "true"
    settings = load_settings()
    base_model(settings)  # the tiny base, built once before the clock starts
    started = time.perf_counter()
    prepared = prepare(settings)
    prepare_s = time.perf_counter() - started
    count = tokenizer_counter(load_tokenizer(settings))
    tokens = sum(count("\n".join(m["content"] for m in r["messages"])) for r in prepared.train)
    started = time.perf_counter()
    run = train(settings)
    train_s = time.perf_counter() - started
    curve = connect(settings, experiment=False).get_metric_history(run["run_id"], "sft_loss")
    started = time.perf_counter()
    report = evaluate(settings)
    return {
        "quality": json.loads(settings.quality_report.read_text()),
        "train_rows": len(prepared.train),
        "test_rows": len(prepared.test),
        "tokens": tokens,
        "prepare_s": prepare_s,
        "train_s": train_s,
        "evaluate_s": time.perf_counter() - started,
        "curve": sorted((m.step, m.value) for m in curve),
        "report": report,
    }


def table(rows_in: int, result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    quality, report = result["quality"], result["report"]
    dropped = quality["dropped"]
    (first_step, first), (last_step, last) = result["curve"][0], result["curve"][-1]
    base, adapter = report["baseline"]["metrics"], report["metrics"]
    out = Table("chatterbot-corpus (english) through the llm-tiny-local project", "value")
    invalid = quality.get("invalid", {"count": 0, "samples": []})
    out.add_row("conversations in (YAML -> JSONL)", f"{rows_in:,}")
    out.add_row("- schema (data.drop_invalid)", f"{invalid['count']:,}")
    for problem in sorted({sample["problems"].split(";")[0] for sample in invalid["samples"]}):
        out.add_row("  e.g.", problem)
    out.add_row("- exact duplicates", f"{dropped['exact_duplicate']:,}")
    out.add_row("- near duplicates", f"{dropped['near_duplicate']:,}")
    out.add_row("- too short / too long", f"{dropped['too_short']:,} / {dropped['too_long']:,}")
    out.add_row("kept: train / test", f"{result['train_rows']:,} / {result['test_rows']:,}")
    cut = quality.get("longer_than_train_max_length", 0)
    out.add_row("- kept but cut short by train.max_length", f"{cut:,}")
    out.add_row("train tokens (tiny tokenizer)", f"{result['tokens']:,}")
    timing = f"{result['prepare_s']:.1f} / {result['train_s']:.1f} / {result['evaluate_s']:.1f}"
    out.add_row("prepare / train / evaluate (s)", timing)
    out.add_row(f"train loss, step {first_step} -> {last_step}", f"{first:.3f} -> {last:.3f}")
    out.add_row("held-out loss, base -> adapter", f"{base['loss']:.3f} -> {adapter['loss']:.3f}")
    out.add_row(
        "held-out perplexity, base -> adapter",
        f"{base['perplexity']:.1f} -> {adapter['perplexity']:.1f}",
    )
    out.add_row(
        "exact-match answers, base -> adapter",
        f"{base['task_accuracy']:.3f} -> {adapter['task_accuracy']:.3f}",
    )
    gate = report["gate"]
    out.add_row("quality gate", "passed" if gate["passed"] else "; ".join(gate["failures"]))
    Console(width=110).print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="folder of ChatterBot YAML files")
    parser.add_argument("--epochs", type=float, default=3, help="fine-tuning epochs")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()
    folder = corpus_folder(args.corpus)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
        (root / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
        data = root / "data" / "raw" / "chatterbot.jsonl"
        rows_in = convert(folder, data)
        os.environ[f"{PREFIX}ROOT"] = str(root)
        os.environ[f"{PREFIX}DATA__PATH"] = str(data)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        table(rows_in, fine_tune(root, args.epochs))


if __name__ == "__main__":
    main()
