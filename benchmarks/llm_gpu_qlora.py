"""The QLoRA path at a real size on CUDA: the project's own `finetune` for a few steps.

    python benchmarks/llm_gpu_qlora.py [--size 1b|tiny] [--steps 20] [--batch 8] [--length 512]

Builds a randomly initialised Llama of Llama-3.2-1B's shape (1.24B parameters; hub weights cannot
be downloaded here, and random weights cost the same), saves it in bf16 with the project's
locally trained tokenizer and chat template, then runs the LLM profile's `finetune(method=
"qlora")`: NF4 with double quantisation, bf16 compute, `prepare_model_for_kbit_training`, LoRA
r=16 on q/k/v/o, TRL's SFTTrainer. Prints the trainer's tokens/s, the step time and the peak GPU
memory. `--size tiny` runs the same path on a CPU in seconds (bitsandbytes 0.50 quantises on CPU
from hidden size 64): the check that this script works before a GPU machine is spent on it.

On the device machine (torch, transformers, peft, accelerate there; no network): render the
project here (`python -c "import sys; sys.path.insert(0, 'benchmarks'); import llm_project;
llm_project.ensure()"`), download wheels for trl, datasets (with dill, multiprocess) and
bitsandbytes into `.whl/` (the device README's pip download line), and carry both folders.
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

# Llama-3.2-1B's published shape (vocabulary included: its embedding is a fifth of the weights).
SHAPES = {
    "1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1024,
        tie_word_embeddings=True,
    ),
}


def build_base(directory: Path, size: str) -> int:
    """A random Llama of `size` with the project's tokenizer, saved in bf16; its parameter count."""
    import torch
    from support_bot.data import builtin_chat
    from support_bot.training.tiny import build_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(builtin_chat.corpus_texts())
    config = LlamaConfig(
        **SHAPES[size],
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    assert len(tokenizer) <= config.vocab_size, "the tokenizer's ids must fit the embedding"
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps")
    parser.add_argument("--batch", type=int, default=8, help="conversations per step")
    parser.add_argument("--length", type=int, default=512, help="train.max_length in tokens")
    args = parser.parse_args()

    import torch
    import transformers
    from support_bot.data import builtin_chat
    from support_bot.training.finetune import LoraParams, TrainParams, finetune

    transformers.logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores)"
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        started = time.perf_counter()
        parameters = build_base(base, args.size)
        built = time.perf_counter() - started
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        result = finetune(
            base,
            builtin_chat.sft_records(args.steps * args.batch, seed=0),
            None,
            "qlora",
            LoraParams(r=16, alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
            TrainParams(
                max_steps=args.steps,
                batch_size=args.batch,
                max_length=args.length,
                logging_steps=max(1, args.steps // 4),
            ),
            Path(scratch) / "adapter",
        )
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    step_ms = 1000 * result.train_tokens / result.train_tokens_per_second / args.steps
    losses = [round(entry["loss"], 3) for entry in result.loss_history]
    rows = [
        ("device", device),
        ("torch / transformers", f"{torch.__version__} / {transformers.__version__}"),
        ("base", f"random Llama, {args.size} shape, {parameters:,} parameters"),
        ("base built and saved", f"{built:.1f} s"),
        ("trainable (LoRA r=16 q,k,v,o)", f"{result.trainable_params:,}"),
        ("steps x batch", f"{args.steps} x {args.batch}"),
        ("training tokens (non-padding)", f"{result.train_tokens:,}"),
        ("tokens/s", f"{result.train_tokens_per_second:,.0f}"),
        ("ms/step", f"{step_ms:.0f}"),
        ("peak GPU memory", f"{peak:.2f} GiB" if cuda else "n/a (CPU)"),
        ("wall (load, quantise, train, save)", f"{result.wall_seconds:.1f} s"),
        ("loss", " -> ".join(map(str, losses))),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
