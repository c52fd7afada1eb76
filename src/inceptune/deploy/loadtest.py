"""Drive a live `inceptune serve`: start one as a subprocess, and load it with concurrent clients.

Used by the test suite and by benchmarks/ alike, so both measure the same thing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(run: str, *args: str, port: int | None = None, startup_timeout: float = 180):
    """`inceptune serve RUN ARGS` on localhost until the block ends; yields (base URL, process)."""
    import httpx

    port = port or free_port()
    process = subprocess.Popen([sys.executable, "-m", "inceptune", "serve", str(run), "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {process.stderr.read()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer /health in time")
            time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def load_test(url: str, images: list[Path], requests: int = 200, clients: int = 8, timeout: float = 120) -> dict:
    """POST `requests` single images to URL/predict from `clients` concurrent clients; latency percentiles."""
    import httpx

    payloads = [(Path(p).name, Path(p).read_bytes()) for p in images]

    def client(k: int) -> list[tuple[float, int | str]]:
        """Client k sends requests k, k + clients, ... one after the other on its own connection."""
        outcomes = []
        with httpx.Client(timeout=timeout) as http:
            for i in range(k, requests, clients):
                name, data = payloads[i % len(payloads)]
                start = time.perf_counter()
                try:
                    status = http.post(f"{url}/predict", files={"file": (name, data, "image/jpeg")}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                outcomes.append((time.perf_counter() - start, status))
        return outcomes

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        outcomes = [o for per_client in pool.map(client, range(clients)) for o in per_client]
    seconds = time.perf_counter() - start
    latencies = np.array([t for t, _ in outcomes]) * 1000
    errors = [s for _, s in outcomes if s != 200]
    return {"requests": requests, "clients": clients, "errors": len(errors), "error_statuses": sorted(set(map(str, errors))),
            "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
            "seconds": round(seconds, 2), "requests_per_s": round(requests / seconds, 1)}
