"""Evaluate a base model or base + LoRA adapter on chat records, and the promotion gate.

:func:`evaluate` reports, for one model:

``loss`` / ``perplexity``
    mean negative log-likelihood of the reference answer's tokens (the assistant turn, with its
    end-of-turn token) given the prompt, and ``exp(loss)``;
``task_accuracy``
    share of records whose greedy generation passes the task check (by default
    :func:`..data.builtin_chat.check_answer`: the answer equals the reference, case and
    whitespace aside).

:func:`gate` decides whether an adapter may be promoted: it must beat the base on
``task_accuracy`` by a margin and meet absolute thresholds. :func:`beats` compares a challenger
with the current champion on the task metric.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.builtin_chat import check_answer, expected_answer, prompt_messages
from ..errors import ProjectError

__all__ = ["TASK_METRIC", "beats", "evaluate", "gate", "load_model"]

TASK_METRIC = "task_accuracy"


def load_model(base_dir: str | Path, adapter_dir: str | Path | None = None):
    """(model, tokenizer) in eval mode: the base, with the adapter applied when given.

    The tokenizer (and so the chat template) comes from the adapter directory when it has one,
    since that is the template the adapter was trained with; otherwise from the base.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    except OSError as exc:
        raise ProjectError(f"cannot load base model {str(base_dir)!r}: {exc}") from exc
    tokenizer_source = str(base_dir)
    if adapter_dir is not None:
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise ProjectError(
                f"{adapter_dir}: no adapter_config.json, not a LoRA adapter directory"
            )
        model = PeftModel.from_pretrained(model, str(adapter_dir))
        if (adapter_dir / "tokenizer_config.json").is_file():
            tokenizer_source = str(adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if not tokenizer.chat_template:
        raise ProjectError(f"{tokenizer_source}: the tokenizer has no chat template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return model, tokenizer


def _encode(tokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True
    )["input_ids"]
    return list(ids)


def _answer_nll(model, tokenizer, records, batch_size: int) -> tuple[float, int]:
    """(summed NLL, token count) of the reference answers given their prompts."""
    import torch

    device = next(model.parameters()).device
    examples = []
    for record in records:
        prompt = prompt_messages(record)
        prompt_ids = _encode(tokenizer, prompt, add_generation_prompt=True)
        answer = {"role": "assistant", "content": expected_answer(record)}
        full_ids = _encode(tokenizer, [*prompt, answer], add_generation_prompt=False)
        start = 0
        while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
            start += 1
        examples.append((full_ids, start))
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, (ids, start) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            labels[row, start : len(ids)] = torch.tensor(ids[start:])
        with torch.no_grad():
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention.to(device)
            ).logits
        logits = logits[:, :-1].float()
        targets = labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)),
            targets.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        total += float(nll)
        count += int((targets != -100).sum())
    return total, count


def _generate(model, tokenizer, records, max_new_tokens: int, batch_size: int) -> list[str]:
    import torch

    device = next(model.parameters()).device
    prompts = [_encode(tokenizer, prompt_messages(r), add_generation_prompt=True) for r in records]
    outputs: list[str] = []
    for i in range(0, len(prompts), batch_size):
        batch = prompts[i : i + batch_size]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # left padding for generation
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        with torch.no_grad():
            generated = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        for row in generated[:, width:]:
            outputs.append(tokenizer.decode(row, skip_special_tokens=True))
    return outputs


def evaluate(
    base_dir: str | Path,
    adapter_dir_or_none: str | Path | None,
    records: Sequence[dict[str, Any]],
    max_new_tokens: int = 32,
    *,
    check: Callable[[dict[str, Any], str], bool] = check_answer,
    batch_size: int = 32,
    samples: int = 3,
) -> dict[str, Any]:
    """Metrics of the base (``adapter_dir_or_none=None``) or base + adapter on ``records``.

    ``records`` are SFT conversations (the last assistant turn is the reference) or preference
    pairs (``chosen`` is the reference). Returns ``loss``, ``perplexity``, ``task_accuracy``,
    ``n``, ``seconds`` and a few ``samples`` (prompt, expected, generated, ok).
    """
    records = list(records)
    if not records:
        raise ProjectError("no evaluation records")
    start = time.perf_counter()
    model, tokenizer = load_model(base_dir, adapter_dir_or_none)
    nll, count = _answer_nll(model, tokenizer, records, batch_size)
    generations = _generate(model, tokenizer, records, max_new_tokens, batch_size)
    passed = [bool(check(record, text)) for record, text in zip(records, generations, strict=True)]
    loss = nll / max(count, 1)
    return {
        "loss": round(loss, 6),
        "perplexity": round(math.exp(min(loss, 50.0)), 4),
        TASK_METRIC: round(sum(passed) / len(passed), 6),
        "n": len(records),
        "seconds": round(time.perf_counter() - start, 2),
        "samples": [
            {
                "prompt": prompt_messages(record)[-1]["content"],
                "expected": expected_answer(record),
                "generated": text,
                "ok": ok,
            }
            for record, text, ok in list(zip(records, generations, passed, strict=True))[:samples]
        ],
    }


def gate(
    adapter_metrics: Mapping[str, Any],
    base_metrics: Mapping[str, Any] | None,
    thresholds: Mapping[str, float] | None = None,
    margin: float = 0.0,
) -> tuple[bool, list[str]]:
    """Whether the adapter may be promoted, and why not.

    * it must beat the base on ``task_accuracy`` by at least ``margin``
      (``adapter >= base + margin``, and strictly better when ``margin`` is 0);
    * ``thresholds`` are absolute bounds: ``"<metric>_max"`` is an upper bound on ``<metric>``
      (e.g. ``"perplexity_max": 5``); ``"<metric>_min"`` or a bare ``"<metric>"`` is a lower
      bound (e.g. ``"task_accuracy": 0.5``). A metric the adapter lacks is a failure.
    """
    failures: list[str] = []
    adapter_task = adapter_metrics.get(TASK_METRIC)
    if adapter_task is None:
        failures.append(f"adapter metrics have no {TASK_METRIC}")
    elif base_metrics is not None:
        base_task = base_metrics.get(TASK_METRIC)
        if base_task is None:
            failures.append(f"base metrics have no {TASK_METRIC}")
        else:
            beat = (
                adapter_task > base_task
                if margin <= 0
                else adapter_task >= base_task + margin - 1e-12
            )
            if not beat:
                failures.append(
                    f"{TASK_METRIC} {adapter_task:.3f} does not beat the base's {base_task:.3f} "
                    f"by the margin {margin:.3f}"
                )
    for key, bound in (thresholds or {}).items():
        if key.endswith("_max"):
            metric, upper = key[: -len("_max")], True
        elif key.endswith("_min"):
            metric, upper = key[: -len("_min")], False
        else:
            metric, upper = key, False
        value = adapter_metrics.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            failures.append(f"{metric} is missing from the adapter's metrics (threshold {key})")
        elif upper and value > bound:
            failures.append(f"{metric} {value:.4g} is above the maximum {bound:.4g}")
        elif not upper and value < bound:
            failures.append(f"{metric} {value:.4g} is below the minimum {bound:.4g}")
    return (not failures, failures)


def beats(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    metric: str = TASK_METRIC,
    margin: float = 0.0,
) -> bool:
    """Whether ``challenger`` should replace ``champion`` (None: there is no champion yet).

    Higher ``metric`` wins; it must exceed the champion's by more than ``margin`` (a tie keeps
    the champion).
    """
    if champion is None or champion.get(metric) is None:
        return challenger.get(metric) is not None
    if challenger.get(metric) is None:
        return False
    return challenger[metric] > champion[metric] + margin
