"""A tiny Llama base model built offline, so the LLM pipeline runs end to end without downloads.

:func:`build_tiny_base` writes a directory that ``AutoTokenizer.from_pretrained`` and
``AutoModelForCausalLM.from_pretrained`` load offline:

* a byte-level BPE tokenizer (~900 tokens: 640 BPE incl. Llama-3 special tokens, plus one token
  per built-in order number; other digits are split one per token) trained here with the
  ``tokenizers`` library, with a Llama-3-style chat template;
* a ``LlamaForCausalLM`` with hidden size 64 (the smallest size bitsandbytes' 4-bit CPU kernels
  take), 2 layers, 4 heads, intermediate size 128, tied embeddings: ~0.14 M parameters.

Design decision: the base is not left random. A random base knows nothing, so "the adapter
beats the base" would hold for any adapter, and LoRA cannot train embeddings, so words the base
never saw stay unreachable (measured: answer words at -20 nats). The base gets a short causal-LM
pre-training (full parameters, plain torch loop, ~550 steps, ~30 s on 2 CPU cores) on *generic*
support text (:func:`..data.builtin_chat.generic_texts` and ``generic_chats``): the same
vocabulary, texts that mention an order number twice (so it learns to copy one, like any
pre-trained LM) and generic chat turns - but never an answer sentence of the rule, so it scores
~0 on the task. The fine-tune has to teach the rule (intent -> fixed sentence, order number
copied) and that is what the evaluation measures. ``pretrain_steps=0`` gives a random base.

Why order numbers are single tokens: copying a 4-digit number digit by digit needs an
induction circuit whose emergence in this 2-layer model took 700 to more than 1500 pre-training
steps depending on the seed and data mix (often not at all within budget); one token per order
number makes copying a single attention lookup, learnt in ~300 steps every time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "BOS",
    "CHAT_TEMPLATE",
    "EOS",
    "PAD",
    "SPECIAL_TOKENS",
    "TinyBaseInfo",
    "build_tiny_base",
    "build_tokenizer",
]

BOS, EOS, PAD = "<|begin_of_text|>", "<|eot_id|>", "<|pad|>"
SPECIAL_TOKENS = [BOS, "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", EOS, PAD]

# The chat template the adapter is trained with, saved with it, and given to every server.
CHAT_TEMPLATE = (Path(__file__).resolve().parents[1] / "chat_template.jinja").read_text()

INFO_FILE = "tiny_base.json"


@dataclass(frozen=True)
class TinyBaseInfo:
    """What :func:`build_tiny_base` built; also saved as ``tiny_base.json`` in the directory."""

    path: str
    vocab_size: int
    parameters: int
    seed: int
    pretrain_steps: int
    pretrain_copy_accuracy: float | None
    pretrain_loss_first: float | None
    pretrain_loss_last: float | None
    seconds: float


def build_tokenizer(
    corpus_texts: Sequence[str], vocab_size: int = 640, word_tokens: Sequence[str] = ()
):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus_texts``.

    Digits are split one per token, except the strings in ``word_tokens`` (the built-in order
    numbers), which are added as one token each. bos/eos/pad are the Llama-3 ``<|begin_of_text|>``,
    ``<|eot_id|>`` (end of turn, so generation stops after the answer) and ``<|pad|>``.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not corpus_texts:
        raise ValueError("corpus_texts is empty: the tokenizer needs text to train on")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus_texts), trainer=trainer)
    if word_tokens:
        tokenizer.add_tokens([AddedToken(w, normalized=False) for w in word_tokens])
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=512,
        padding_side="right",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def _copy_probe(tokenizer, seed: int, n: int = 64):
    """Texts that mention an order number twice, and where the second copy's digits are.

    Teacher-forced digit accuracy on them measures whether the model has learnt to copy a number
    seen earlier in the context (an "induction head"), which the fine-tune relies on.
    """
    import random

    import torch

    from ..data.builtin_chat import ORDER_IDS, PRODUCTS

    rng = random.Random(f"probe-{seed}")
    rows, targets = [], []
    for _ in range(n):
        order, product = rng.choice(ORDER_IDS), rng.choice(PRODUCTS)
        prefix = (
            f"Ticket about order #{order}: the customer asked about the {product}. Checked order #"
        )
        prefix_ids = [
            tokenizer.bos_token_id,
            *tokenizer(prefix, add_special_tokens=False)["input_ids"],
        ]
        digit_ids = tokenizer(order, add_special_tokens=False)["input_ids"]
        rows.append(prefix_ids + digit_ids)
        targets.append(list(range(len(prefix_ids), len(prefix_ids) + len(digit_ids))))
    width = max(len(r) for r in rows)
    input_ids = torch.full((n, width), tokenizer.pad_token_id)
    attention = torch.zeros((n, width), dtype=torch.long)
    for i, ids in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
    return input_ids, attention, targets


def copy_accuracy(model, probe) -> float:
    """Share of the probe's copied digits that ``model`` predicts right (greedy, teacher-forced)."""
    import torch

    input_ids, attention, targets = probe
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predicted = model(input_ids=input_ids, attention_mask=attention).logits.argmax(-1)
    model.train(was_training)
    right = total = 0
    for row, positions in enumerate(targets):
        for pos in positions:
            right += int(predicted[row, pos - 1] == input_ids[row, pos])
            total += 1
    return right / total


def _pretrain(
    model,
    tokenizer,
    texts: Sequence[str],
    max_steps: int,
    seed: int,
    lr: float,
    batch_size: int,
    stop_at_copy: float | None,
    check_every: int = 50,
) -> tuple[list[float], int, float | None]:
    """Full-parameter causal-LM training on ``texts`` (plain torch loop; fast for a tiny model).

    Linear warm-up then a constant rate; stops early once the copy probe reaches
    ``stop_at_copy`` (checked every ``check_every`` steps, so it is deterministic).
    Returns (losses, steps done, last copy accuracy).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    end_of_text = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    encoded = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids or ids[0] != tokenizer.bos_token_id:  # chat-rendered texts start with bos
            ids = [tokenizer.bos_token_id, *ids]
        encoded.append([*ids, end_of_text])
    probe = _copy_probe(tokenizer, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, min(50, max_steps // 10))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup)
    )
    model.train()
    losses: list[float] = []
    copy = None
    for step in range(1, max_steps + 1):
        idx = torch.randint(len(encoded), (batch_size,), generator=generator).tolist()
        batch = [encoded[i] for i in idx]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        labels = input_ids.masked_fill(attention == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % check_every == 0 or step == max_steps:
            copy = copy_accuracy(model, probe)
            if stop_at_copy is not None and copy >= stop_at_copy:
                break
    model.eval()
    return losses, len(losses), copy


def default_pretrain_phases(tokenizer, seed: int = 0) -> list[tuple[list[str], bool]]:
    """The built-in pre-training curriculum: ``[(texts, stop_when_copying), ...]``.

    1. copy-rich generic support text (:func:`..data.builtin_chat.generic_texts` without the
       vocabulary sentences) until the model copies order numbers (an induction head forms
       after ~500-1000 steps; diluted data delays it a lot);
    2. a short mix of all generic text (which also uses the answers' words in other sentences,
       so their embeddings are trained: LoRA cannot train embeddings) and generic chats rendered
       with the chat template (the special tokens and turn layout).

    Never the rule's answers.
    """
    from ..data.builtin_chat import generic_chats, generic_texts

    copy_texts = generic_texts(4000, seed, vocabulary=False)
    mix = generic_texts(3000, seed + 1)
    mix += [
        tokenizer.apply_chat_template(chat, tokenize=False) for chat in generic_chats(500, seed)
    ]
    return [(copy_texts, True), (mix, False)]


def build_tiny_base(
    out_dir: str | Path,
    corpus_texts: Sequence[str],
    seed: int = 0,
    *,
    pretrain_texts: Sequence[str] | None = None,
    pretrain_steps: int = 1500,
    pretrain_lr: float = 2e-2,
    pretrain_batch_size: int = 32,
    pretrain_stop_at_copy: float | None = 0.95,
    pretrain_mix_steps: int = 250,
    vocab_size: int = 640,
    word_tokens: Sequence[str] | None = None,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate_size: int = 128,
    max_positions: int = 512,
) -> TinyBaseInfo:
    """Build and save the tiny base (tokenizer + ``LlamaForCausalLM``) under ``out_dir``.

    ``corpus_texts`` trains the tokenizer. ``pretrain_texts`` (default: 4000 texts of
    :func:`generic_texts` for ``seed``) pre-trains the model for ``pretrain_steps`` steps; 0
    leaves it randomly initialised. Deterministic for a given ``seed`` (on one machine).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden_size < 64:
        raise ValueError("hidden_size must be >= 64 (bitsandbytes' 4-bit CPU kernels need it)")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if word_tokens is None:
        from ..data.builtin_chat import ORDER_IDS

        word_tokens = ORDER_IDS
    tokenizer = build_tokenizer(corpus_texts, vocab_size=vocab_size, word_tokens=word_tokens)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.05,
    )
    model = LlamaForCausalLM(config)
    losses: list[float] = []
    steps_done, copy = 0, None
    if pretrain_steps > 0:
        if pretrain_texts is None:
            phases = default_pretrain_phases(tokenizer, seed)
        else:
            phases = [(list(pretrain_texts), True)]
        for number, (texts, stop) in enumerate(phases):
            phase_losses, steps, copy = _pretrain(
                model,
                tokenizer,
                texts,
                pretrain_steps if stop else pretrain_mix_steps,
                seed + number,
                pretrain_lr,
                pretrain_batch_size,
                pretrain_stop_at_copy if stop else None,
            )
            losses += phase_losses
            steps_done += steps
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    info = TinyBaseInfo(
        path=str(out_dir),
        vocab_size=len(tokenizer),
        parameters=sum(p.numel() for p in model.parameters()),
        seed=seed,
        pretrain_steps=steps_done,
        pretrain_copy_accuracy=round(copy, 4) if copy is not None else None,
        pretrain_loss_first=round(losses[0], 4) if losses else None,
        pretrain_loss_last=round(sum(losses[-20:]) / len(losses[-20:]), 4) if losses else None,
        seconds=round(time.perf_counter() - start, 2),
    )
    (out_dir / INFO_FILE).write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
    return info
