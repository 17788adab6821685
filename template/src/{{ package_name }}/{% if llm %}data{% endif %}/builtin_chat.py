"""A deterministic built-in chat dataset for a customer-support assistant.

The task is small enough for a tiny model to learn in a few CPU minutes, and strict enough that
learning it is measurable:

* the user asks about one order (``#NNNN``, one of the 256 four-digit :data:`ORDER_IDS`) with
  one of five intents (status, refund, cancel, address change, damaged item), phrased in one of
  four ways per intent and often naming one of eight products;
* the assistant's answer is a fixed sentence per intent that copies the order number, e.g.
  ``"Your order #4821 has shipped and arrives in 3 days."``

So a model that answers right must (1) recognise the intent from the wording and (2) copy the
order number from the question (chance: 1/5 x 1/256). The task metric, :func:`check_answer`,
is an exact match of the answer after normalising case and whitespace: an answer with the wrong
phrase, a wrong digit or extra text fails.

Formats (the ones TRL 1.x reads):

* SFT, conversational language modelling: ``{"messages": [system, user, assistant]}``;
* preference, conversational with an explicit prompt:
  ``{"prompt": [system, user], "chosen": [assistant], "rejected": [assistant]}``.

Every generator takes a ``seed`` and returns the same rows for the same ``(n, seed)``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ProjectError

__all__ = [
    "ANSWERS",
    "INTENTS",
    "ORDER_IDS",
    "PRODUCTS",
    "SYSTEM_PROMPT",
    "check_answer",
    "corpus_texts",
    "expected_answer",
    "generic_chats",
    "generic_texts",
    "normalize_answer",
    "order_numbers",
    "preference_records",
    "prompt_messages",
    "read_jsonl",
    "sft_records",
    "shuffle_answers",
    "write_jsonl",
]

SYSTEM_PROMPT = "You are the support assistant of Flywheel Shop. Answer in one sentence."

PRODUCTS = (
    "kettle",
    "lamp",
    "backpack",
    "keyboard",
    "blender",
    "jacket",
    "monitor",
    "headphones",
)

INTENTS = ("status", "refund", "cancel", "address", "damaged")

#: The shop's open orders: 256 fixed four-digit order numbers. The tiny base's tokenizer has one
#: token per order number (see ``training.tiny``), so copying one is a single attention lookup
#: that a 2-layer, 64-wide model learns in seconds; digit-by-digit copying needs an induction
#: circuit whose emergence took 700 to >1500 pre-training steps, depending on the seed.
ORDER_IDS: tuple[str, ...] = tuple(
    str(n) for n in sorted(random.Random("flywheel-order-ids").sample(range(1000, 10000), 256))
)

# The rule the assistant follows: one fixed sentence per intent, with the order number copied.
ANSWERS = {
    "status": "Your order #{order} has shipped and arrives in 3 days.",
    "refund": "Your refund for order #{order} is approved and arrives in 5 days.",
    "cancel": "Order #{order} is cancelled and you will not be charged.",
    "address": "The delivery address of order #{order} is now updated.",
    "damaged": "Sorry about that, a new item for order #{order} ships today.",
}

QUESTIONS = {
    "status": (
        "Where is my {product}? The order is #{order}.",
        "What is the status of order #{order}?",
        "Has my {product} from order #{order} shipped yet?",
        "I am still waiting for order #{order}, the {product}.",
    ),
    "refund": (
        "I want a refund for the {product} in order #{order}.",
        "Can I get my money back for order #{order}?",
        "Please refund order #{order}, I returned the {product}.",
        "How do I get a refund for order #{order}?",
    ),
    "cancel": (
        "Please cancel order #{order}.",
        "I changed my mind about the {product}, cancel order #{order}.",
        "Can you stop order #{order} before it ships?",
        "Cancel my {product} order #{order} please.",
    ),
    "address": (
        "I moved, please change the address for order #{order}.",
        "Can you send order #{order} to my new address?",
        "The address on order #{order} is wrong, I need to update it.",
        "Ship the {product} in order #{order} to my office address instead.",
    ),
    "damaged": (
        "The {product} in order #{order} arrived broken.",
        "My {product} is damaged, the order is #{order}.",
        "Order #{order} came with a cracked {product}.",
        "The box of order #{order} was crushed and the {product} does not work.",
    ),
}

# Generic support text used to pre-train the tiny base (it never contains an answer sentence).
# These mention an order number twice: the base learns to copy a number seen earlier.
_GENERIC_COPY = (
    "Ticket about order #{order}: the customer asked about the {product}. "
    "Checked order #{order} today.",
    "Note for order #{order}. The {product} is in stock. Reference #{order} closed.",
    "The customer wrote: {question} Agent looked up order #{order}.",
    "Order #{order} contains one {product}. Warehouse confirmed order #{order}.",
    "{question}",
    "Customer message: {question}",
    "Log: order #{order} viewed, {product} page opened, order #{order} saved.",
)
# The answers' words in other sentences, so the base knows them (it never sees an answer).
_GENERIC_VOCAB = (
    "Most refunds are approved within a week and the money arrives by bank transfer.",
    "A parcel with a {product} usually arrives in 2 to 5 days after it has shipped.",
    "Orders can be cancelled before they are packed, and customers will not be charged twice.",
    "Customers can update the delivery address in their account before order #{order} ships.",
    "Sorry, the {product} is out of stock today. A new batch ships next week.",
    "Order #{order} has a {product}. The item is now packed, order #{order} is ready.",
    "About your {product}: that model is new and a spare item for it is in stock.",
)

# Generic assistant replies for the base's pre-training: chat-shaped and copying the order
# number, but never one of the rule's ANSWERS (so the base scores ~0 on the task).
_GENERIC_REPLIES = (
    "Thanks for your message about order #{order}. Let me look into it.",
    "I am checking order #{order} now, one moment please.",
    "Order #{order} is in our system. Can I help with anything else?",
    "I can see order #{order} with the {product}. A colleague will follow up.",
    "Thank you, I have noted order #{order} and the {product}.",
)

_ORDER_RE = re.compile(r"#(\d+)")
_WS_RE = re.compile(r"\s+")


def _order_number(rng: random.Random) -> str:
    return rng.choice(ORDER_IDS)


def _example(rng: random.Random) -> tuple[str, str, str, str]:
    """(intent, order, question, answer) for one random example."""
    intent = rng.choice(INTENTS)
    order = _order_number(rng)
    product = rng.choice(PRODUCTS)
    question = rng.choice(QUESTIONS[intent]).format(order=order, product=product)
    answer = ANSWERS[intent].format(order=order)
    return intent, order, question, answer


def _prompt(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]


def sft_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` conversations ``{"messages": [system, user, assistant]}``, deterministic in seed."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"sft-{seed}")
    records = []
    for _ in range(n):
        _, _, question, answer = _example(rng)
        records.append({"messages": [*_prompt(question), {"role": "assistant", "content": answer}]})
    return records


def _wrong_answer(rng: random.Random, intent: str, order: str) -> str:
    kind = rng.randrange(3)
    if kind == 0:  # right order number, wrong intent
        other = rng.choice([i for i in INTENTS if i != intent])
        return ANSWERS[other].format(order=order)
    if kind == 1:  # right intent, wrong order number
        wrong = order
        while wrong == order:
            wrong = _order_number(rng)
        return ANSWERS[intent].format(order=wrong)
    return "Please contact our support team for help with your order."


def preference_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` preference pairs in TRL's conversational format with an explicit prompt.

    ``chosen`` follows the rule; ``rejected`` has the wrong intent, the wrong order number or a
    generic non-answer.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"pref-{seed}")
    records = []
    for _ in range(n):
        intent, order, question, answer = _example(rng)
        records.append(
            {
                "prompt": _prompt(question),
                "chosen": [{"role": "assistant", "content": answer}],
                "rejected": [{"role": "assistant", "content": _wrong_answer(rng, intent, order)}],
            }
        )
    return records


def generic_texts(n: int, seed: int = 0, *, vocabulary: bool = True) -> list[str]:
    """``n`` plain support-log texts from the same vocabulary, without any answer sentence.

    They are what the tiny base is pre-trained on: it learns the words, the order-number format
    and copying a number seen earlier in the text, but not the assistant's rule.
    ``vocabulary=False`` leaves out the sentences that only teach the answers' words (the
    copy-rich texts alone teach copying faster).
    """
    rng = random.Random(f"generic-{seed}")
    templates = _GENERIC_COPY + (_GENERIC_VOCAB if vocabulary else ())
    texts = []
    for _ in range(n):
        intent = rng.choice(INTENTS)
        order = _order_number(rng)
        product = rng.choice(PRODUCTS)
        question = rng.choice(QUESTIONS[intent]).format(order=order, product=product)
        texts.append(rng.choice(templates).format(order=order, product=product, question=question))
    return texts


def generic_chats(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """``n`` chat-shaped conversations (system, user, assistant) for the base's pre-training.

    The user asks a built-in question; the assistant gives a *generic* reply that copies the
    order number but never follows the rule, like a chat model that was never taught this shop's
    answers.
    """
    rng = random.Random(f"generic-chat-{seed}")
    chats = []
    for _ in range(n):
        intent = rng.choice(INTENTS)
        order = _order_number(rng)
        product = rng.choice(PRODUCTS)
        question = rng.choice(QUESTIONS[intent]).format(order=order, product=product)
        reply = rng.choice(_GENERIC_REPLIES).format(order=order, product=product)
        chats.append([*_prompt(question), {"role": "assistant", "content": reply}])
    return chats


def corpus_texts(n: int = 400, seed: int = 0) -> list[str]:
    """Texts to train the tiny tokenizer on: system prompt, questions, answers and generic text."""
    texts = [SYSTEM_PROMPT]
    for record in sft_records(n, seed):
        texts.extend(message["content"] for message in record["messages"][1:])
    texts.extend(generic_texts(n, seed))
    texts.extend(chat[-1]["content"] for chat in generic_chats(max(n // 4, 1), seed))
    for record in preference_records(max(n // 4, 1), seed):
        texts.append(record["rejected"][0]["content"])
    return texts


def prompt_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation up to (not including) the answer, for an SFT or a preference record."""
    if "prompt" in record:
        return list(record["prompt"])
    messages = list(record["messages"])
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("an SFT record must end with an assistant message")
    return messages[:-1]


def expected_answer(record: dict[str, Any]) -> str:
    """The reference answer: an SFT record's last assistant turn, a preference pair's chosen."""
    if "chosen" in record:
        return record["chosen"][-1]["content"]
    messages = record["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("an SFT record must end with an assistant message")
    return messages[-1]["content"]


def normalize_answer(text: str) -> str:
    """Casefold and collapse whitespace; cut at an end-of-turn marker if the text has one."""
    for marker in ("<|eot_id|>", "<|end_of_text|>"):
        text = text.split(marker, 1)[0]
    return _WS_RE.sub(" ", text).strip().casefold()


def check_answer(record: dict[str, Any], generated_text: str) -> bool:
    """The task metric: the generated answer equals the reference answer (case/whitespace aside).

    On the built-in data this checks the whole rule at once: the intent's fixed sentence and the
    order number copied digit for digit, with nothing else added.
    """
    return normalize_answer(generated_text) == normalize_answer(expected_answer(record))


def order_numbers(text: str) -> list[str]:
    """The ``#NNNN`` order numbers in ``text``, in order."""
    return _ORDER_RE.findall(text)


def shuffle_answers(records: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """A copy of SFT ``records`` whose answers are permuted across records (a broken dataset).

    Every answer still has the right form, but no longer matches its question: a model trained on
    it must fail the gate.
    """
    rng = random.Random(f"shuffle-{seed}")
    answers = [expected_answer(record) for record in records]
    order = list(range(len(answers)))
    rng.shuffle(order)
    shuffled = []
    for record, j in zip(records, order, strict=True):
        messages = [dict(m) for m in prompt_messages(record)]
        messages.append({"role": "assistant", "content": answers[j]})
        shuffled.append({"messages": messages})
    return shuffled


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write ``records`` one JSON object a line (UTF-8); return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by :func:`write_jsonl` (blank lines are skipped)."""
    if not Path(path).is_file():
        raise ProjectError(f"{path}: no such file")
    return list(_iter_jsonl(Path(path)))


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProjectError(f"{path}:{line_number}: not valid JSON: {exc.msg}") from exc
