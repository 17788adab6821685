"""Time to first token and tokens/s of the OpenAI-compatible server under 1, 4 and 16 concurrent
clients, beside a plain `model.generate()` loop on the same model in this process.

    python benchmarks/llm_server.py                      # random model, built here
    python benchmarks/llm_server.py --hidden 512 --layers 8
    python benchmarks/llm_server.py --adapter models/adapter  # a real fine-tune

The server runs in its own process (as in production: the clients' threads do not share its
GIL) and every client streams, so time to first token is what a user sees. Each client sends
--requests requests one after the other; answers are greedy and up to --max-tokens long.

Columns: TTFT p50/p95 (request sent to first text), decode tok/s per request (tokens after the
first over the time after the first, median), total tok/s (all tokens generated over the wall
time of the run: the server's throughput) and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_project

ROOT = llm_project.ensure()

MODEL = "bench"
MESSAGES = [
    {"role": "system", "content": "You are a helpful customer support assistant."},
    {"role": "user", "content": "My order has not arrived yet. Can I get a refund?"},
]
HEADER = ("run", "n", "TTFT p50 ms", "TTFT p95 ms", "decode tok/s", "total tok/s", "wall s")
WIDTHS = (21, 3, 11, 11, 12, 11, 6)


@dataclass
class Sample:
    ttft: float
    tokens: int
    total: float

    @property
    def decode_rate(self) -> float:
        decode = self.total - self.ttft
        return (self.tokens - 1) / decode if self.tokens > 1 and decode > 0 else float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def plain_generate(adapter: Path, base: str | None, runs: int, max_tokens: int, threads: int):
    """The floor: model.generate() on the merged model, no server, one request at a time."""
    import torch
    from support_bot.serving.generation import LoadedModel

    loaded = LoadedModel.load(adapter, base, torch_threads=threads)
    ids = torch.tensor([loaded.prompt_ids(MESSAGES)])
    eos = sorted(loaded.eos_token_ids)

    def generate(new_tokens: int) -> tuple[float, int]:
        started = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(
                ids,
                max_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=eos[0],
                attention_mask=torch.ones_like(ids),
            )
        return time.perf_counter() - started, out.shape[1] - ids.shape[1]

    generate(max_tokens)  # warm up
    samples = []
    for _ in range(runs):
        ttft, _ = generate(1)
        total, tokens = generate(max_tokens)
        samples.append(Sample(ttft, tokens, total))
    return samples, ids.shape[1]


def start_server(adapter: Path, base: str | None, port: int, threads: int) -> subprocess.Popen:
    config = {
        "model_name": MODEL,
        "adapter_path": str(adapter),
        "base_model": base,
        "torch_threads": threads,
        "max_in_flight": 256,
    }
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from support_bot.serving.llm_app import ServerConfig, serve\n"
        "c = json.loads(sys.argv[1]); c['adapter_path'] = Path(c['adapter_path'])\n"
        f"serve(ServerConfig(**c), port={port}, log_level='warning')\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen([sys.executable, "-c", code, json.dumps(config)], env=env)
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the server did not become ready")
        time.sleep(0.2)


def one_stream(client, max_tokens: int) -> Sample:
    started = time.perf_counter()
    first = None
    tokens = 0
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    end = time.perf_counter()
    return Sample((first or end) - started, tokens, end - started)


def run_clients(base_url: str, clients: int, requests: int, max_tokens: int):
    import openai

    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600)
    samples: list[Sample] = []
    lock = threading.Lock()

    def worker(_: int) -> None:
        for _ in range(requests):
            sample = one_stream(client, max_tokens)
            with lock:
                samples.append(sample)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return samples, time.perf_counter() - started


def row(name: str, samples: list[Sample], wall: float) -> str:
    ttfts = [s.ttft * 1000 for s in samples]
    rates = [s.decode_rate for s in samples if s.decode_rate == s.decode_rate]
    tokens = sum(s.tokens for s in samples)
    decode = statistics.median(rates) if rates else float("nan")
    cells = [
        f"{name:<{WIDTHS[0]}}",
        f"{len(samples):>{WIDTHS[1]}}",
        f"{percentile(ttfts, 0.5):>{WIDTHS[2]}.0f}",
        f"{percentile(ttfts, 0.95):>{WIDTHS[3]}.0f}",
        f"{decode:>{WIDTHS[4]}.1f}",
        f"{tokens / wall:>{WIDTHS[5]}.1f}",
        f"{wall:>{WIDTHS[6]}.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--adapter", type=Path, help="a PEFT adapter dir (default: build a random model)"
    )
    parser.add_argument("--base", help="base model (default: the adapter's)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2, help="per client")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: the server's choice)"
    )
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        adapter = args.adapter
        if adapter is None:
            from llm_fixtures import build_tiny_llm

            heads = max(4, args.hidden // 64)
            adapter = build_tiny_llm(
                Path(tmp),
                hidden_size=args.hidden,
                layers=args.layers,
                heads=heads,
                max_positions=1024,
            ).adapter_dir
            print(
                f"model: random Llama, hidden {args.hidden}, {args.layers} layers, "
                f"{heads} heads + LoRA r=4"
            )
        else:
            print(f"model: {adapter}")
        print(
            f"prompt: chat template of {MESSAGES!r}; greedy, max_tokens={args.max_tokens}; "
            f"torch threads: {args.threads or 'default'}; cores: {os.cpu_count()}\n"
        )

        samples, prompt_tokens = plain_generate(
            adapter, args.base, max(3, args.requests), args.max_tokens, args.threads
        )
        lines = [
            f"prompt tokens: {prompt_tokens}\n",
            "| " + " | ".join(f"{h:<{w}}" for h, w in zip(HEADER, WIDTHS, strict=True)) + " |",
            "|:"
            + "-" * (WIDTHS[0] + 1)
            + "|"
            + "|".join("-" * (w + 1) + ":" for w in WIDTHS[1:])
            + "|",
            row("model.generate() loop", samples, sum(s.total for s in samples)),
        ]
        server = start_server(adapter, args.base, args.port, args.threads)
        try:
            base_url = f"http://127.0.0.1:{args.port}"
            run_clients(base_url, 1, 1, args.max_tokens)  # warm up
            for clients in (int(c) for c in args.clients.split(",")):
                samples, wall = run_clients(base_url, clients, args.requests, args.max_tokens)
                lines.append(
                    row(f"server, {clients} client{'s' if clients > 1 else ''}", samples, wall)
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
