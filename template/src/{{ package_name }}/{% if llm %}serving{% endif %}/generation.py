"""The fine-tuned model behind the server: base + LoRA adapter + the adapter's tokenizer.

- `LoadedModel.load` reads the base (a local directory or a hub id), applies the PEFT adapter and
  takes the tokenizer saved *with the adapter*: its chat template is the one the model was trained
  on, so it is the only template ever applied (the base's may differ, or be absent).
- `LoadedModel.generate` runs one request through `model.generate()`, turning tokens into text
  deltas as they come (stop strings cut, partial UTF-8 and partial stop strings held back), so a
  stream and a plain answer are the same deltas, joined or not.
- `Engine` owns the one worker thread that generation runs on: requests are served one at a time
  (one model, a few CPU cores: two at once would each run at half speed and hold two KV caches),
  and the event loop only ever awaits a queue.

torch, transformers and peft are imported inside the functions that need them, so importing the
app stays fast and /health answers while the model loads.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..monitoring.text_stats import token_counter

ADAPTER_CONFIG = "adapter_config.json"
# transformers' from_pretrained swaps process-wide functions while it loads (weight tying and
# init turned off, then put back) and is not thread-safe: two loads at once, such as a champion
# and a challenger, can leave tying off for good, and every tied base loaded later in the process
# gets a random lm_head. One load at a time.
_LOADING = threading.Lock()


class ModelUnavailable(Exception):
    """The model cannot be served; the message says why and what to do (shown by /ready)."""


class QueueFull(Exception):
    """More requests are waiting for the model than the server accepts."""


@dataclass(frozen=True)
class SamplingParams:
    """One request's decoding settings, already validated by the API layer."""

    max_tokens: int
    temperature: float | None = None  # None: the model's generation_config, else 1.0
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Finished:
    """The end of one generation: why it stopped, token counts and timings (perf_counter)."""

    finish_reason: str  # "stop", "length" or "cancelled"
    prompt_tokens: int
    completion_tokens: int
    started_at: float  # when the worker picked the request up
    first_token_at: float | None
    ended_at: float


@dataclass
class _Job:
    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[object], None]
    cancel: threading.Event = field(default_factory=threading.Event)


def default_torch_threads() -> int:
    """One thread fewer than the CPUs this process may use (affinity and cgroup quota).

    torch's own default is every core of the machine. In a container with a CPU quota, or on a
    box where anything else runs, its threads then spin waiting for each other: on 2 shared
    cores, 2 threads generated 5-10 times slower than 1 (NOTES-server.md). The spare core keeps
    the event loop, tokenization and the kernel responsive.
    """
    import math
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus - 1)


def read_adapter_config(adapter_path: Path) -> dict[str, Any]:
    """The adapter's adapter_config.json, or ModelUnavailable saying what is wrong with it."""
    adapter_path = Path(adapter_path)
    if not adapter_path.is_dir():
        raise ModelUnavailable(
            f"adapter directory {adapter_path} does not exist: train the model or point the "
            "server at the registered adapter"
        )
    config_file = adapter_path / ADAPTER_CONFIG
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelUnavailable(
            f"{config_file} is missing: {adapter_path} is not a PEFT adapter directory"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailable(
            f"{config_file} is unreadable ({exc}): the adapter is corrupt"
        ) from None
    if not isinstance(config, dict):
        raise ModelUnavailable(f"{config_file} is not a JSON object: the adapter is corrupt")
    return config


class LoadedModel:
    """A base model with its LoRA adapter and the adapter's tokenizer, ready to generate."""

    def __init__(self, model: Any, tokenizer: Any, context_length: int) -> None:
        self.model, self.tokenizer, self.context_length = model, tokenizer, context_length
        # Encoding can mutate a fast tokenizer's truncation state ("Already borrowed" when two
        # threads do it at once); decoding does not.
        self._encode_lock = threading.Lock()
        self._count_tokens = token_counter(tokenizer)
        self.eos_token_ids = self._eos_token_ids()
        self.defaults = self._sampling_defaults()

    @classmethod
    def load(
        cls,
        adapter_path: str | Path,
        base_model: str | None = None,
        *,
        dtype: str = "float32",
        merge_adapter: bool = True,
        max_context_tokens: int | None = None,
        torch_threads: int | None = None,
        device: str | None = None,
    ) -> LoadedModel:
        """Load base + adapter + the adapter's tokenizer; ModelUnavailable says what failed.

        base_model defaults to the adapter's base_model_name_or_path. merge_adapter folds the
        LoRA weights into the base (same outputs, no extra matmuls per token). torch_threads
        defaults to default_torch_threads(); device to "cuda" when there is one, else "cpu".
        """
        adapter_path = Path(adapter_path)
        adapter_config = read_adapter_config(adapter_path)
        base = base_model or adapter_config.get("base_model_name_or_path")
        if not base:
            raise ModelUnavailable(
                f"no base model: {adapter_path / ADAPTER_CONFIG} names none and none was configured"
            )
        if not (adapter_path / "tokenizer_config.json").is_file():
            raise ModelUnavailable(
                f"{adapter_path} has no tokenizer: save the training tokenizer with the adapter "
                "(its chat template is the one the model learned)"
            )

        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(torch_threads or default_torch_threads())
        try:
            tokenizer = AutoTokenizer.from_pretrained(adapter_path)
        except Exception as exc:
            raise ModelUnavailable(f"tokenizer in {adapter_path} is unreadable: {exc}") from exc
        if not tokenizer.chat_template:
            raise ModelUnavailable(f"tokenizer in {adapter_path} has no chat template")
        with _LOADING:
            try:
                model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
            except Exception as exc:
                raise ModelUnavailable(f"base model {base} could not be loaded: {exc}") from exc
            try:
                model = PeftModel.from_pretrained(model, adapter_path)
            except Exception as exc:
                raise ModelUnavailable(
                    f"adapter {adapter_path} could not be applied: {exc}"
                ) from exc
        if merge_adapter:
            model = model.merge_and_unload()
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()

        limit = getattr(model.config, "max_position_embeddings", None) or max_context_tokens
        if limit is None:
            raise ModelUnavailable("the model's context length is unknown: set max_context_tokens")
        if max_context_tokens:
            limit = min(limit, max_context_tokens)
        return cls(model, tokenizer, limit)

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The prompt for `messages`, built by the adapter tokenizer's chat template.

        Raises ValueError (jinja's TemplateError is one) when the template refuses the messages,
        for example a template that demands alternating user/assistant turns.
        """
        with self._encode_lock:
            ids = self.tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=True, tokenize=True, return_dict=False
            )
        return list(ids)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the drift job counts them (the request log's statistics)."""
        with self._encode_lock:
            return self._count_tokens(text)

    def generate(self, job: _Job) -> Finished:
        """Generate for one job on the calling thread, emitting text deltas through job.emit."""
        import torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        started = time.perf_counter()
        prompt_tokens = len(job.prompt_ids)
        text = TextAssembler(self.tokenizer, job.params.stop)
        state = {"count": 0, "first": None, "eos": False}
        eos_ids = self.eos_token_ids

        class Deltas(BaseStreamer):
            prompt_seen = False

            def put(self, value: Any) -> None:
                if not self.prompt_seen:  # generate() first puts the prompt itself
                    self.prompt_seen = True
                    return
                for token in value.reshape(-1).tolist():
                    if state["first"] is None:
                        state["first"] = time.perf_counter()
                    state["count"] += 1
                    if token in eos_ids:
                        state["eos"] = True
                        return
                    delta = text.add(token)
                    if delta:
                        job.emit(delta)

            def end(self) -> None:
                pass

        class Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = text.stopped or job.cancel.is_set()
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

        config = GenerationConfig(**self._generation_kwargs(job.params))
        if job.params.seed is not None:
            torch.manual_seed(job.params.seed)
        input_ids = torch.tensor([job.prompt_ids], dtype=torch.long, device=self.model.device)
        with torch.inference_mode():
            self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=config,
                streamer=Deltas(),
                stopping_criteria=StoppingCriteriaList([Stop()]),
            )
        if not text.stopped:
            tail = text.flush()
            if tail:
                job.emit(tail)
        if job.cancel.is_set() and not (text.stopped or state["eos"]):
            reason = "cancelled"
        elif text.stopped or state["eos"]:
            reason = "stop"
        else:
            reason = "length"
        return Finished(
            finish_reason=reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=state["count"],
            started_at=started,
            first_token_at=state["first"],
            ended_at=time.perf_counter(),
        )

    def _generation_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        temperature = params.temperature
        if temperature is None:
            temperature = self.defaults.get("temperature", 1.0)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "eos_token_id": sorted(self.eos_token_ids),
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else min(self.eos_token_ids),
            "num_beams": 1,
            "repetition_penalty": self.defaults.get("repetition_penalty", 1.0),
        }
        if temperature == 0:
            kwargs["do_sample"] = False
            return kwargs
        top_p = params.top_p if params.top_p is not None else self.defaults.get("top_p", 1.0)
        kwargs.update(
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            # OpenAI has no top_k; transformers' global default would be 50.
            top_k=self.defaults.get("top_k", 0),
        )
        return kwargs

    def _eos_token_ids(self) -> set[int]:
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        if not ids:
            raise ModelUnavailable("neither the tokenizer nor the model names an end-of-turn token")
        return ids

    def _sampling_defaults(self) -> dict[str, float]:
        """Sampling values the model's generation_config sets, used when a request omits them.

        vLLM does the same (its --generation-config auto), so both servers answer alike.
        """
        config = self.model.generation_config
        defaults: dict[str, float] = {}
        for name in ("temperature", "top_p", "top_k", "repetition_penalty"):
            value = getattr(config, name, None)
            if value is not None:
                defaults[name] = value
        return defaults


class TextAssembler:
    """Token ids in, text deltas out: what can be shown now, never a stop string.

    Decoding token by token breaks multi-byte characters and merges (a token may change how the
    previous one decodes), so each step decodes a short window and emits only the new, complete
    text (the method vLLM and TGI use). Text that could be the start of a stop string is held
    back until it is known not to be one; once a stop string appears, the text before it is
    emitted and `stopped` is set.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0
        self.pending = ""
        self.stopped = False

    def add(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token_id)
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        full = self._decode(self.ids[self.prefix_offset :])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self.pending += full[len(prefix) :]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return self._release(final=False)

    def flush(self) -> str:
        """The rest, at the end of generation (an incomplete character shows as U+FFFD)."""
        if self.stopped:
            return ""
        prefix = self._decode(self.ids[self.prefix_offset : self.read_offset])
        full = self._decode(self.ids[self.prefix_offset :])
        self.pending += full[len(prefix) :]
        self.prefix_offset = self.read_offset = len(self.ids)
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        cut = min((i for i in (self.pending.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            out, self.pending, self.stopped = self.pending[:cut], "", True
            return out
        hold = 0 if final else self._partial_stop_length()
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold :]
        return out

    def _partial_stop_length(self) -> int:
        """Length of the longest end of `pending` that begins some stop string."""
        longest = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(self.pending)), longest, -1):
                if self.pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True) if ids else ""


class Engine:
    """Runs generations one at a time on a single worker thread; the event loop never blocks."""

    def __init__(
        self,
        model: LoadedModel,
        max_in_flight: int = 64,
        on_finished: Callable[[Finished], None] | None = None,
    ) -> None:
        """on_finished sees every generation's end on the worker thread, abandoned ones too."""
        self.model = model
        self.max_in_flight = max_in_flight
        self.on_finished = on_finished
        self.in_flight = 0  # requests queued or running (the metrics gauge reads it)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncIterator[str | Finished]:
        """Text deltas as they are generated, then one Finished.

        Closing the iterator early (the client went away) cancels the generation: a queued
        request never starts, a running one stops at its next token.
        """
        if self.in_flight >= self.max_in_flight:
            raise QueueFull(f"{self.in_flight} requests are already waiting for the model")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()

        def emit(event: object) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop has closed: the server is shutting down
                job.cancel.set()

        job = _Job(prompt_ids, params, emit)
        self.in_flight += 1
        # _run never raises: its outcome (text, Finished or an exception) arrives via `events`.
        loop.run_in_executor(self._worker, self._run, job)
        try:
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event  # type: ignore[misc]
                if isinstance(event, Finished):
                    return
        finally:
            job.cancel.set()
            self.in_flight -= 1

    def _run(self, job: _Job) -> None:
        if job.cancel.is_set():  # its client left while it waited
            now = time.perf_counter()
            finished = Finished("cancelled", len(job.prompt_ids), 0, now, None, now)
        else:
            try:
                finished = self.model.generate(job)
            except Exception as exc:  # handed to the request that asked, not lost in the thread
                job.emit(exc)
                return
        if self.on_finished is not None:
            self.on_finished(finished)
        job.emit(finished)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
