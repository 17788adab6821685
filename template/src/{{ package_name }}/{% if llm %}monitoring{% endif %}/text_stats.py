"""Text statistics of one chat: what the drift job compares between training data and traffic.

The server computes them on the full text when it logs a request, so they hold even when the
log keeps no text (serving.log_text_chars: 0); the drift job computes the training data's with
the same function and the same tokenizer (the served adapter's).

    prompt_tokens       tokens of the prompt's messages, joined
    completion_tokens   tokens of the answer
    prompt_non_ascii    share of the prompt's characters outside ASCII (another script, emoji)
    refusal             1 if the answer reads as a refusal (monitoring.refusal_markers)
    empty               1 if the answer is empty or blank
    prompt_oov          share of the prompt's words never seen in the training prompts (computed
                        by the drift job from the logged text; absent when no text is logged)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

WORD = re.compile(r"[^\W\d_]+")  # letters only, in any script
# Computed per request; prompt_oov is added by the drift job (it needs the training vocabulary).
STATS = ("prompt_tokens", "completion_tokens", "prompt_non_ascii", "refusal", "empty")
OOV = "prompt_oov"


@dataclass(frozen=True)
class Stat:
    """A column the drift test reads (the shape the Evidently engine takes)."""

    name: str
    kind: str = "numeric"


def prompt_text(messages: Iterable[dict[str, Any]]) -> str:
    """The prompt as one text: every message's content, in order (the chat template aside)."""
    return "\n".join(str(m.get("content", "")) for m in messages)


def describe(
    prompt: str, completion: str, count_tokens: Callable[[str], int], markers: Sequence[str]
) -> dict[str, float]:
    """The statistics of one chat (STATS)."""
    lowered = completion.lower()
    return {
        "prompt_tokens": float(count_tokens(prompt)),
        "completion_tokens": float(count_tokens(completion)),
        "prompt_non_ascii": sum(not c.isascii() for c in prompt) / max(len(prompt), 1),
        "refusal": float(any(marker.lower() in lowered for marker in markers)),
        "empty": float(not completion.strip()),
    }


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def oov_share(text: str, vocabulary: set[str]) -> float:
    """Share of `text`'s words outside `vocabulary` (0 for a text without words)."""
    found = words(text)
    return sum(word not in vocabulary for word in found) / len(found) if found else 0.0


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens of a text as the model reads it, without special tokens."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
