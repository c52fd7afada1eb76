"""Drive a live `inceptune serve`: start one as a subprocess, and load it with concurrent clients.

Used by the test suite and by benchmarks/ alike, so both measure the same thing.
"""

from __future__ import annotations

import base64
import json
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


def free_ports(n: int) -> list[int]:
    """`n` different free ports (a local cluster's workers)."""
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


@contextmanager
def serving(run: str, *args: str, port: int | None = None, startup_timeout: float = 180, env: dict | None = None):
    """`inceptune serve RUN ARGS` on localhost (with `env` added to this environment) until the block ends;
    yields (base URL, process)."""
    import httpx

    port = port or free_port()
    process = subprocess.Popen([sys.executable, "-m", "inceptune", "serve", str(run), "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
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


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _soak_requests(images: list[Path], count: int, model: str, bad_every: int) -> list[dict]:
    """`count` requests over /predict, the Open Inference Protocol (binary BYTES) and TF Serving's b64; every
    `bad_every`-th one malformed in one of several ways. Each: method, path, keyword arguments, image index."""
    import struct

    def v2_binary(data: bytes) -> dict:
        header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                         "parameters": {"binary_data_size": 4 + len(data)}}],
                             "outputs": [{"name": "label"}]}).encode()
        return {"content": header + struct.pack("<I", len(data)) + data,
                "headers": {"Inference-Header-Content-Length": str(len(header)),
                            "Content-Type": "application/octet-stream"}}

    jpeg = images[0].read_bytes()
    malformed = [
        ("/predict", {"files": {"file": ("cut.jpg", jpeg[: len(jpeg) // 3], "image/jpeg")}}),
        ("/predict", {"content": b"plain words", "headers": {"Content-Type": "text/plain"}}),
        (f"/v2/models/{model}/infer", {"content": b"{not json"}),
        (f"/v2/models/{model}/infer", {"json": {"inputs": [{"name": "logits", "datatype": "FP32", "shape": [1],
                                                            "data": [0.5]}]}}),
        (f"/v2/models/{model}/infer", v2_binary(b"not an image at all")),
        (f"/v1/models/{model}:predict", {"json": {"instances": [{"b64": "%%% not base64"}]}}),
        ("/v2/models/no-such-model/infer", {"json": {"inputs": []}}),
    ]
    requests = []
    for i in range(count):
        if (i + 1) % bad_every == 0:
            path, kwargs = malformed[(i // bad_every) % len(malformed)]
            requests.append({"path": path, "kwargs": kwargs, "image": None})
            continue
        k = i % len(images)
        data = images[k].read_bytes()
        route = i % 3
        if route == 0:
            requests.append({"path": "/predict", "kwargs": {"files": {"file": (images[k].name, data, "image/jpeg")}},
                             "image": k})
        elif route == 1:
            requests.append({"path": f"/v2/models/{model}/infer", "kwargs": v2_binary(data), "image": k})
        else:
            requests.append({"path": f"/v1/models/{model}:predict", "image": k,
                             "kwargs": {"json": {"instances": [{"b64": base64.b64encode(data).decode()}]}}})
    return requests


def _top_label(path: str, response) -> str:
    answer = response.json()
    if path == "/predict":
        return answer["predictions"][0]["top"][0]["label"]
    if path.startswith("/v1/"):
        return answer["predictions"][0]["label"]
    return answer["outputs"][0]["data"][0]


def soak_test(url: str, process, images: list[Path], expected: list[str], model: str, requests: int = 2000,
              clients: int = 16, bad_every: int = 20, warmup: int = 200, headers: dict | None = None,
              timeout: float = 120) -> dict:
    """`requests` requests from `clients` concurrent clients (every `bad_every`-th malformed), checking each
    answer: a good one 200 with the top class `expected[image]`, a malformed one 4xx with a JSON error. The
    server's RSS is read after the first `warmup` requests and at the end."""
    import httpx

    plan = _soak_requests(images, requests, model, bad_every)

    def run(batch: list[dict]) -> list[dict]:
        def client(k: int) -> list[dict]:
            outcomes = []
            with httpx.Client(base_url=url, timeout=timeout, headers=headers or {}) as http:
                for request in batch[k::clients]:
                    start = time.perf_counter()
                    try:
                        response = http.post(request["path"], **request["kwargs"])
                    except httpx.HTTPError as exc:
                        outcomes.append({"ok": False, "status": type(exc).__name__, "seconds": 0.0})
                        continue
                    seconds = time.perf_counter() - start
                    if request["image"] is None:
                        ok = 400 <= response.status_code < 500 and _json_error(response)
                    else:
                        ok = response.status_code == 200 and _top_label(request["path"], response) == \
                            expected[request["image"]]
                    outcomes.append({"ok": ok, "status": response.status_code, "seconds": seconds,
                                     "malformed": request["image"] is None})
            return outcomes

        with ThreadPoolExecutor(max_workers=clients) as pool:
            return [o for per_client in pool.map(client, range(clients)) for o in per_client]

    start = time.perf_counter()
    outcomes = run(plan[:warmup])
    rss_warm = rss_bytes(process.pid)
    outcomes += run(plan[warmup:])
    rss_end = rss_bytes(process.pid)
    seconds = time.perf_counter() - start
    latencies = np.array([o["seconds"] for o in outcomes]) * 1000
    return {"requests": len(outcomes), "clients": clients, "malformed": sum(o.get("malformed", False) for o in outcomes),
            "wrong": sum(not o["ok"] for o in outcomes),
            "server_errors": sum(isinstance(o["status"], int) and o["status"] >= 500 for o in outcomes),
            "statuses": sorted({str(o["status"]) for o in outcomes}),
            "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
            "rss_after_warmup": rss_warm, "rss_end": rss_end, "rss_growth": rss_end / rss_warm - 1,
            "seconds": round(seconds, 1)}


def _json_error(response) -> bool:
    try:
        return isinstance(response.json().get("error"), str)
    except ValueError:
        return False
