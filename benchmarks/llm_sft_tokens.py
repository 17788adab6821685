"""SFT training throughput (tokens/s) of the tiny offline base on CPU, as a table.

    HF_HUB_OFFLINE=1 python benchmarks/llm_sft_tokens.py [--base DIR] [--steps 30] [--rows 512]

Builds the tiny base in a temporary directory unless --base is given, then runs a short
``finetune`` for each configuration (LoRA all-linear / q,k,v,o, QLoRA, DPO) and prints the
non-padding training tokens per second that the trainer counted, the step time and the wall
time (which includes loading the model and tokenising the data).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_project

llm_project.ensure()

CONFIGS = [
    # (label, method, target_modules, r, batch size)
    ("sft all-linear r16 bs8", "sft", "all-linear", 16, 8),
    ("sft all-linear r16 bs16", "sft", "all-linear", 16, 16),
    ("sft all-linear r16 bs32", "sft", "all-linear", 16, 32),
    ("sft q,k,v,o r16 bs16", "sft", ["q_proj", "k_proj", "v_proj", "o_proj"], 16, 16),
    ("qlora all-linear r16 bs16", "qlora", "all-linear", 16, 16),
    ("dpo all-linear r16 bs16", "dpo", "all-linear", 16, 16),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="a tiny base directory (default: build one)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per configuration")
    parser.add_argument("--rows", type=int, default=512, help="built-in rows to train on")
    args = parser.parse_args()

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    from support_bot.data import builtin_chat
    from support_bot.training.finetune import LoraParams, TrainParams, finetune
    from support_bot.training.tiny import build_tiny_base

    with tempfile.TemporaryDirectory() as scratch:
        base = args.base
        if base is None:
            base = Path(scratch) / "base"
            started = time.perf_counter()
            info = build_tiny_base(base, builtin_chat.corpus_texts(), seed=0)
            print(
                f"tiny base: {info.parameters:,} parameters, {info.pretrain_steps} pre-training "
                f"steps, built in {time.perf_counter() - started:.1f} s"
            )
        sft = builtin_chat.sft_records(args.rows, seed=0)
        prefs = builtin_chat.preference_records(args.rows, seed=0)
        rows = []
        for label, method, targets, r, batch in CONFIGS:
            result = finetune(
                base,
                prefs if method == "dpo" else sft,
                None,
                method,
                LoraParams(r=r, alpha=2 * r, dropout=0.05, target_modules=targets),
                TrainParams(
                    max_steps=args.steps,
                    learning_rate=5e-3,
                    batch_size=batch,
                    max_length=128,
                    logging_steps=args.steps,
                ),
                Path(scratch) / label.replace(" ", "_"),
            )
            seconds = result.train_tokens / result.train_tokens_per_second
            rows.append(
                (
                    label,
                    result.trainable_params,
                    result.train_tokens,
                    result.train_tokens_per_second,
                    1000 * seconds / args.steps,
                    result.wall_seconds,
                )
            )

    print()
    print(
        f"CPU: {os.cpu_count()} cores visible, torch {torch.__version__}, "
        f"{args.steps} steps per configuration, {torch.get_num_threads()} torch threads "
        "(set OMP_NUM_THREADS)"
    )
    header = ("configuration", "trainable", "tokens", "tokens/s", "ms/step", "wall s")
    widths = (28, 10, 8, 10, 8, 7)
    print(
        " | ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    print("-+-".join("-" * w for w in widths))
    for label, trainable, tokens, speed, ms, wall in rows:
        cells = (
            label,
            f"{trainable:,}",
            f"{tokens:,}",
            f"{speed:,.0f}",
            f"{ms:.0f}",
            f"{wall:.1f}",
        )
        print(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
