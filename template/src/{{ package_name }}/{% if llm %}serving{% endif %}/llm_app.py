"""An OpenAI-compatible chat server for the fine-tuned model (base + LoRA adapter), on CPU or GPU.

Routes:
- GET  /v1/models, /v1/models/{id}  the model served, under its registered name
- POST /v1/chat/completions          chat, plain or `stream: true` (server-sent events)
- GET  /health                       the process answers (always 200)
- GET  /ready                        200 once the model is loaded; 503 with the reason otherwise
- GET  /metrics                      Prometheus
- POST /webhook/drift-detected       Alertmanager: a firing alert labelled action=retrain starts
                                     one retraining (bearer monitoring.webhook_token)

Each chat is logged for the drift job (chat_log.py) once its answer is sent. With a challenger
adapter configured (serving.rollout, arms.py), chats are routed between champion and challenger
by name and canary weight, or mirrored to the challenger in the background (shadow).

Any OpenAI client talks to it as it talks to vLLM (see openai_client.py). Every refusal is
OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, with a 4xx status; a
request never gets a 500 for something it sent. The server starts even when the model cannot be
loaded (no adapter yet, a corrupt one), answers /health, and says why on /ready.

Run one process per model: generations are serialized on one worker thread (see generation.py),
so more uvicorn workers would only load more copies of the model.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..monitoring.text_stats import prompt_text
from .body_limit import CLOSE, BodyLimit
from .chat_log import ChatLog
from .generation import (
    Engine,
    Finished,
    LoadedModel,
    ModelUnavailable,
    QueueFull,
    SamplingParams,
    read_adapter_config,
)
from .llm_metrics import LLMMetrics

if TYPE_CHECKING:
    from ..pipelines.retraining import Request as Retraining
    from .arms import Challenger, Rollout

log = logging.getLogger(__name__)

OWNER = __package__.split(".")[0]
MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True)
class ServerConfig:
    """What the server serves and its limits.

    model_name: the name clients send as `model`, e.g. the registered model and version
        ("support-bot:3"); aliases are accepted too.
    adapter_path: the PEFT adapter directory, with the training tokenizer saved beside it.
    base_model: a local directory or hub id; None takes the adapter's base_model_name_or_path.
    max_context_tokens: prompt + max_tokens may not exceed this; None is the model's own
        max_position_embeddings (a smaller value caps memory and latency).
    """

    model_name: str
    adapter_path: Path
    base_model: str | None = None
    aliases: tuple[str, ...] = ()
    max_context_tokens: int | None = None
    default_max_tokens: int = 256  # when a request sets none (capped by the context left)
    max_output_tokens: int = 2048
    max_body_bytes: int = 1_000_000
    max_in_flight: int = 64  # queued + running; more is a 429 the client retries
    api_key: str | None = None  # when set, /v1/* want "Authorization: Bearer <api_key>"
    dtype: str = "float32"
    merge_adapter: bool = True
    torch_threads: int | None = None  # None: the CPUs usable, less one (default_torch_threads)
    device: str | None = None  # None: cuda when there is one, else cpu
    # Why there is nothing to serve (no champion yet, registry down): /ready says it, 503.
    unavailable: str | None = None
    # Each chat's text statistics, and its text cut to log_text_chars (0: none); None: no log.
    request_log: Path | None = None
    log_text_chars: int = 2000
    refusal_markers: tuple[str, ...] = ()
    # A second adapter on the same base, routed to by name, canary weight or shadow (arms.py).
    challenger: Challenger | None = None
    # POST /webhook/drift-detected: what starts a retraining for a reason (None: no such
    # route), and the bearer token Alertmanager sends (None: every call is a 401).
    retrain: Callable[[str], Retraining] | None = None
    webhook_token: str | None = None


class OpenAIError(Exception):
    """A refusal in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = (
            status,
            message,
            param,
            code,
            type,
        )
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers)


# --- request schema ------------------------------------------------------------------------

StrictStr = Annotated[str, Strict()]
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
# Strict floats still take JSON integers ("temperature": 1); NaN and Infinity are refused.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Any
    name: StrictStr | None = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, value: Any) -> str:
        # A list of text parts is what the OpenAI SDK sends for multi-part text; anything
        # else (images, audio, numbers, objects, null) this text model cannot take.
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(_is_text_part(part) for part in value):
            return "".join(part["text"] for part in value)
        raise ValueError(
            "content must be a string (or a list of {'type': 'text', 'text': ...} parts)"
        )


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat request this server honours; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: Number | None = Field(None, ge=0, le=2)
    top_p: Number | None = Field(None, gt=0, le=1)
    n: StrictInt | None = Field(None, ge=1)
    stop: Any = None
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    seed: StrictInt | None = None
    presence_penalty: Number | None = Field(None, ge=-2, le=2)
    frequency_penalty: Number | None = Field(None, ge=-2, le=2)
    logprobs: StrictBool | None = None
    tools: list[Any] | None = None
    user: StrictStr | None = None

    @field_validator("stop")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise ValueError("stop must be a string or a list of strings")

    def unsupported(self) -> OpenAIError | None:
        """A 400 for what is valid OpenAI but this server does not do, rather than ignoring it."""
        if self.n is not None and self.n > 1:
            return _bad(
                "n > 1 is not supported: send n requests (or use seeds)", "n", "unsupported_value"
            )
        if self.logprobs:
            return _bad(
                "logprobs are not supported by this server", "logprobs", "unsupported_value"
            )
        if self.tools:
            return _bad("tools are not supported by this server", "tools", "unsupported_value")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                return _bad(
                    f"{name} is not supported by this server (send 0)", name, "unsupported_value"
                )
        stops = self.stop_sequences()
        if len(stops) > MAX_STOP_SEQUENCES:
            return _bad(f"at most {MAX_STOP_SEQUENCES} stop sequences", "stop", "invalid_value")
        return None

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)


class Alert(BaseModel):
    status: StrictStr = "firing"
    labels: dict[str, StrictStr] = {}


class AlertPayload(BaseModel):
    """Alertmanager's webhook body (the fields used), or just {"reason": ...}."""

    status: StrictStr = "firing"
    alerts: list[Alert] = []
    reason: StrictStr | None = None

    def retrain_reason(self) -> str | None:
        """Why to retrain: the firing alerts labelled action=retrain; None when there are none."""
        firing = [a for a in self.alerts if a.status == "firing"]
        wanted = sorted({a.labels.get("alertname", "alert") for a in firing if _retrains(a)})
        if self.status == "resolved" or (self.alerts and not wanted):
            return None
        return self.reason or f"{', '.join(wanted) or 'drift'} via /webhook/drift-detected"


def _retrains(alert: Alert) -> bool:
    return alert.labels.get("action") == "retrain"


TYPE_ERRORS = {
    "string_type",
    "int_type",
    "int_from_float",
    "bool_type",
    "float_type",
    "list_type",
    "model_type",
    "model_attributes_type",
    "dict_type",
}


def _bad(message: str, param: str | None, code: str | None = "invalid_value") -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def _param(loc: Sequence[Any]) -> str | None:
    """A pydantic location as OpenAI names parameters: messages.[0].role."""
    parts = [f"[{part}]" if isinstance(part, int) else str(part) for part in loc if part != "body"]
    return ".".join(parts) or None


def validation_error(errors: Sequence[dict[str, Any]]) -> OpenAIError:
    """The first validation error, in OpenAI's words."""
    if not errors:
        return _bad("invalid request", None)
    error = errors[0]
    if error["type"] == "json_invalid":
        return OpenAIError(
            400,
            "We could not parse the JSON body of your request: "
            f"{error.get('ctx', {}).get('error', 'invalid JSON')}. Send valid JSON.",
            code="invalid_json",
        )
    param = _param(error.get("loc", ()))
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error["type"] == "missing":
        return _bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    code = "invalid_type" if error["type"] in TYPE_ERRORS else "invalid_value"
    where = f"'{param}'" if param else "the request body"
    return _bad(f"Invalid value for {where}: {message}", param, code)


# --- middleware ----------------------------------------------------------------------------


class OpenAIBodyLimit(BodyLimit):
    """serving.max_body_bytes, refused in OpenAI's shape."""

    def refusal(self) -> OpenAIError:
        message = f"Request body over the server's {self.limit:,}-byte limit."
        return OpenAIError(413, message, code="request_too_large", headers=CLOSE)

    def respond(self) -> Response:
        return self.refusal().response()


class CountRequests:
    """llm_requests{route, status} for every answer on the API routes, refusals included."""

    ROUTES = ("/v1/chat/completions", "/v1/models")

    def __init__(self, app: ASGIApp, metrics: LLMMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            return await self.app(scope, receive, send)
        route = next((r for r in self.ROUTES if path.startswith(r)), "other")
        started = False

        async def counting(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, counting)
        except Exception:
            if not started:  # the outermost error handler will answer 500
                self.metrics.requests.labels(route, "500").inc()
            raise


# --- the model slot ------------------------------------------------------------------------


class ModelSlot:
    """The model once loaded, or why it is not (yet)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.reason = "model is loading"
        self.loaded = threading.Event()

    def load(self, config: ServerConfig, metrics: LLMMetrics, adapter_path: Path) -> None:
        """Load `adapter_path` on the configured base; the champion's sets llm_model_ready."""
        champion = adapter_path == config.adapter_path
        try:
            model = LoadedModel.load(
                adapter_path,
                config.base_model,
                dtype=config.dtype,
                merge_adapter=config.merge_adapter,
                max_context_tokens=config.max_context_tokens,
                torch_threads=config.torch_threads,
                device=config.device,
            )
        except ModelUnavailable as exc:
            self.reason = str(exc)
        except Exception as exc:  # anything else a broken checkpoint throws
            log.exception("model failed to load")
            self.reason = f"model failed to load: {type(exc).__name__}: {exc}"
        else:
            self.engine = Engine(model, config.max_in_flight, on_finished=metrics.count_generation)
            self.reason = ""
            if champion:
                metrics.ready.set(1)
            log.info("serving %s (context %d tokens)", adapter_path, model.context_length)
        finally:
            self.loaded.set()


# --- the app -------------------------------------------------------------------------------


def create_app(config: ServerConfig) -> FastAPI:
    """The server for `config`; the model loads in the background once the app starts."""
    metrics = LLMMetrics()
    slot = ModelSlot()
    names = (config.model_name, *config.aliases)
    rollout, challenger_slot = _rollout(config, metrics)
    served = (*names, rollout.challenger.name) if rollout else names
    chat_log = (
        ChatLog(
            config.request_log,
            metrics.request_log_lost,
            config.log_text_chars,
            config.refusal_markers,
        )
        if config.request_log
        else None
    )
    created = int(time.time())
    metrics.model_info.labels(
        config.model_name, config.base_model or "(from adapter)", str(config.adapter_path)
    ).set(1)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if config.unavailable:
                raise ModelUnavailable(config.unavailable)
            read_adapter_config(config.adapter_path)  # a missing adapter is reported at once
        except ModelUnavailable as exc:
            slot.reason = str(exc)
            slot.loaded.set()
        else:
            load = (config, metrics, config.adapter_path)
            threading.Thread(target=slot.load, args=load, daemon=True).start()
        if rollout and not rollout.challenger.unavailable:
            load = (config, metrics, rollout.challenger.adapter_path)
            threading.Thread(target=challenger_slot.load, args=load, daemon=True).start()
        yield
        if rollout:
            await rollout.aclose()
        for engine in (slot.engine, challenger_slot.engine):
            if engine is not None:
                engine.shutdown()
        if chat_log:
            chat_log.close()

    app = FastAPI(title=f"{config.model_name} (OpenAI-compatible)", lifespan=lifespan)
    app.state.slot, app.state.metrics, app.state.config = slot, metrics, config
    app.add_middleware(OpenAIBodyLimit, limit=config.max_body_bytes)
    app.add_middleware(CountRequests, metrics=metrics)

    @app.exception_handler(OpenAIError)
    async def _openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc.errors()).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return OpenAIError(exc.status_code, str(exc.detail), code=code).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        error = OpenAIError(
            500, "The server had an error processing your request.", type="server_error"
        )
        return error.response()

    def check_key(request: Request) -> None:
        if config.api_key is None:
            return
        sent = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(sent, f"Bearer {config.api_key}".encode()):
            raise OpenAIError(
                401,
                "Incorrect or missing API key.",
                code="invalid_api_key",
                type="invalid_request_error",
            )

    def model_card(name: str) -> dict[str, Any]:
        card: dict[str, Any] = {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": OWNER,
        }
        if slot.engine is not None:
            card["max_model_len"] = slot.engine.model.context_length
        return card

    def unknown_model(name: str) -> OpenAIError:
        return OpenAIError(
            404,
            f"The model '{name}' does not exist: this server serves "
            f"{', '.join(repr(n) for n in served)}.",
            param="model",
            code="model_not_found",
        )

    # The probes are async: they never wait for a thread-pool slot behind tokenization.
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if slot.engine is None:
            state = "loading" if not slot.loaded.is_set() else "unavailable"
            return JSONResponse({"status": state, "reason": slot.reason}, 503)
        body: dict[str, Any] = {"status": "ready", "model": config.model_name}
        if rollout:  # the champion serves either way; the challenger's state is news
            body["challenger"] = challenger_slot.reason or "ready"
        return JSONResponse(body)

    @app.get("/metrics")
    async def prometheus() -> Response:
        if slot.engine is not None:
            metrics.in_flight.set(slot.engine.in_flight)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    if config.retrain is not None:
        add_webhook(app, config, config.retrain, metrics)

    @app.get("/v1/models")
    def list_models(request: Request) -> dict[str, Any]:
        check_key(request)
        return {"object": "list", "data": [model_card(name) for name in served]}

    @app.get("/v1/models/{model_id:path}")
    def get_model(model_id: str, request: Request) -> dict[str, Any]:
        check_key(request)
        if model_id not in served:
            raise unknown_model(model_id)
        return model_card(model_id)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        received = time.perf_counter()
        check_key(request)
        chat = parse_chat_request(await json_body(request))
        if (refusal := chat.unsupported()) is not None:
            raise refusal
        if chat.model not in served:
            raise unknown_model(chat.model)
        arm = (
            rollout.pick(chat.model, challenger_slot.engine is not None) if rollout else "champion"
        )
        answering = challenger_slot if arm == "challenger" else slot
        engine = answering.engine
        if engine is None:
            raise OpenAIError(
                503,
                f"The model is not ready: {answering.reason}",
                code="model_not_ready",
                type="server_error",
            )
        if rollout:
            metrics.rollout_requests.labels(arm).inc()
        prompt_ids = await to_thread.run_sync(_prompt_ids, engine.model, chat)
        params = sampling_params(chat, len(prompt_ids), engine.model.context_length, config)
        if engine.in_flight >= engine.max_in_flight:
            raise OpenAIError(
                429,
                f"{engine.in_flight} requests are already waiting for the model; retry shortly.",
                code="queue_full",
                type="rate_limit_error",
            )
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"

        def done(text: str, finished: Finished) -> None:
            """The answer is out: log it, and hand a champion's chat to the shadow."""
            try:
                if chat_log:
                    latency = round(time.perf_counter() - received, 4)
                    fields = {"model": chat.model, "arm": arm, "latency_s": latency}
                    chat_log.record(engine.model, messages, text, finished, **fields)
                if rollout and rollout.shadow and arm == "champion":
                    prompt = prompt_text(messages)
                    rollout.mirror(lambda: shadow_answer(chat, params), chat.model, prompt, text)
            except Exception:  # the answer is made: what follows it must not fail it
                log.exception("logging or mirroring a chat failed")

        messages = [{"role": m.role, "content": m.content} for m in chat.messages]
        # An answer names the adapter that made it, as vLLM's do.
        model = rollout.challenger.name if rollout and arm == "challenger" else chat.model
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            events = stream_events(
                engine, prompt_ids, params, completion_id, model, include_usage, received, done
            )
            return StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return JSONResponse(
            await complete(engine, prompt_ids, params, completion_id, model, received, done)
        )

    async def shadow_answer(chat: ChatCompletionRequest, params: SamplingParams) -> dict[str, Any]:
        """The challenger's answer to a chat the champion answered (logged, never returned)."""
        engine = challenger_slot.engine
        if engine is None:
            raise ModelUnavailable(f"challenger not ready: {challenger_slot.reason}")
        prompt_ids = await to_thread.run_sync(_prompt_ids, engine.model, chat)
        parts: list[str] = []
        async with aclosing(engine.generate(prompt_ids, params)) as events:
            async for event in events:
                if isinstance(event, Finished):
                    return {"completion": "".join(parts), **usage(event)}
                parts.append(event)
        raise ModelUnavailable("the challenger stopped before finishing")

    def record(finished: Finished, received: float, stream: bool) -> None:
        """What the client lived through; tokens are counted by the engine (count_generation)."""
        metrics.queue_time.observe(max(0.0, finished.started_at - received))
        metrics.request_latency.labels(str(stream).lower()).observe(time.perf_counter() - received)
        if finished.first_token_at is not None:
            metrics.time_to_first_token.observe(finished.first_token_at - received)

    async def complete(
        engine: Engine,
        prompt_ids: list[int],
        params: SamplingParams,
        completion_id: str,
        model: str,
        received: float,
        done: Callable[[str, Finished], None],
    ) -> dict[str, Any]:
        parts: list[str] = []
        finished: Finished | None = None
        try:
            async with aclosing(engine.generate(prompt_ids, params)) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        finished = event
                    else:
                        parts.append(event)
        except QueueFull as exc:
            raise OpenAIError(429, str(exc), code="queue_full", type="rate_limit_error") from None
        if finished is None:  # the worker went away (shutdown)
            raise OpenAIError(
                503, "The server is shutting down.", code="shutting_down", type="server_error"
            )
        record(finished, received, stream=False)
        done("".join(parts), finished)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(parts)},
                    "logprobs": None,
                    "finish_reason": finished.finish_reason,
                }
            ],
            "usage": usage(finished),
        }

    async def stream_events(
        engine: Engine,
        prompt_ids: list[int],
        params: SamplingParams,
        completion_id: str,
        model: str,
        include_usage: bool,
        received: float,
        done: Callable[[str, Finished], None],
    ) -> AsyncIterator[str]:
        created_at = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
            body = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created_at,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
                **extra,
            }
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        finished: Finished | None = None
        parts: list[str] = []
        try:
            yield chunk({"role": "assistant", "content": ""})
            async with aclosing(engine.generate(prompt_ids, params)) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        finished = event
                    else:
                        parts.append(event)
                        yield chunk({"content": event})
            assert finished is not None
            record(finished, received, stream=True)
            done("".join(parts), finished)
            yield chunk({}, finished.finish_reason)
            if include_usage:
                body = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created_at,
                    "model": model,
                    "choices": [],
                    "usage": usage(finished),
                }
                yield f"data: {json.dumps(body)}\n\n"
        except QueueFull as exc:
            error = OpenAIError(429, str(exc), code="queue_full", type="rate_limit_error")
            yield f"data: {json.dumps(error.body())}\n\n"
        except Exception:
            log.exception("generation failed mid-stream")
            error = OpenAIError(
                500, "The server had an error while generating.", type="server_error"
            )
            yield f"data: {json.dumps(error.body())}\n\n"
        yield "data: [DONE]\n\n"

    return app


def _rollout(config: ServerConfig, metrics: LLMMetrics) -> tuple[Rollout | None, ModelSlot]:
    """The Rollout for config.challenger (None without one) and the challenger's slot."""
    challenger_slot = ModelSlot()
    if config.challenger is None:
        return None, challenger_slot
    from .arms import Rollout

    if config.challenger.unavailable:  # no challenger yet: the champion takes every chat
        challenger_slot.reason = config.challenger.unavailable
        challenger_slot.loaded.set()
    count = metrics.shadow_requests.labels
    rollout = Rollout(
        config.challenger, lambda outcome: count(outcome).inc(), config.log_text_chars
    )
    return rollout, challenger_slot


def add_webhook(
    app: FastAPI, config: ServerConfig, retrain: Callable[[str], Retraining], metrics: LLMMetrics
) -> None:
    """POST /webhook/drift-detected: Alertmanager's drift alert starts one retraining at a time."""

    def check_token(request: Request) -> None:
        expected = config.webhook_token
        sent = request.headers.get("authorization", "").encode()
        if not expected or not hmac.compare_digest(sent, f"Bearer {expected}".encode()):
            message = "Invalid or missing token." if expected else "No webhook token configured."
            raise OpenAIError(
                401, message, code="invalid_token", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.post("/webhook/drift-detected", tags=["monitoring"])
    async def drift_detected(request: Request) -> dict[str, Any]:
        check_token(request)  # before the body is read: a stranger's megabyte is never parsed
        try:
            payload = AlertPayload.model_validate_json(await json_body(request))
        except ValidationError as exc:
            raise validation_error(exc.errors(include_url=False)) from None
        reason = payload.retrain_reason()
        if reason is None:
            metrics.retraining.labels("ignored").inc()
            message = "no firing alert labelled action=retrain: nothing to do"
            return {"started": False, "message": message}
        outcome = await to_thread.run_sync(retrain, reason)  # starts a process: not on the loop
        metrics.retraining.labels("started" if outcome.started else "deduplicated").inc()
        return {"started": outcome.started, "message": outcome.message}


def usage(finished: Finished) -> dict[str, int]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


async def json_body(request: Request) -> bytes:
    """The raw body of a JSON request: 415 for another content type (none is read as JSON)."""
    content_type = request.headers.get("content-type")
    if content_type:
        media = content_type.partition(";")[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise OpenAIError(
                415,
                f"Content-Type '{media}' is not supported: send application/json.",
                code="unsupported_media_type",
            )
    return await request.body()


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None


def _prompt_ids(model: LoadedModel, chat: ChatCompletionRequest) -> list[int]:
    messages = [{"role": m.role, "content": m.content} for m in chat.messages]
    try:
        return model.prompt_ids(messages)
    except Exception as exc:  # the chat template refused these messages (jinja raise_exception)
        raise _bad(f"The chat template refused the messages: {exc}", "messages") from None


def sampling_params(
    chat: ChatCompletionRequest, prompt_tokens: int, context: int, config: ServerConfig
) -> SamplingParams:
    """The request's decoding settings within the server's limits, or a 400 naming the limit."""
    requested = chat.max_completion_tokens or chat.max_tokens
    param = "max_completion_tokens" if chat.max_completion_tokens else "max_tokens"
    if requested is not None and requested > config.max_output_tokens:
        raise _bad(
            f"{param} is too large: {requested}. This server generates at most "
            f"{config.max_output_tokens} tokens per request.",
            param,
        )
    room = context - prompt_tokens
    if room < 1 or (requested is not None and requested > room):
        asked = requested or 1
        raise OpenAIError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + asked} tokens ({prompt_tokens} in the messages, {asked} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )
    return SamplingParams(
        max_tokens=requested or min(config.default_max_tokens, room),
        temperature=chat.temperature,
        top_p=chat.top_p,
        stop=chat.stop_sequences(),
        seed=chat.seed,
    )


def serve(
    config: ServerConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> None:
    """Run the server in the foreground (one process: the model is loaded once)."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, workers=1)
