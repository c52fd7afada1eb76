"""Prometheus metrics of `serve` (the official prometheus_client), scraped at GET /metrics.

    inceptune_requests_total{route,method,status}   requests answered (/metrics itself is not counted)
    inceptune_request_seconds{route}                 latency histogram, from the first byte in to the last out
    inceptune_batch_images                           histogram of the model's micro-batch sizes
    inceptune_images_total                           images the model ran on
    inceptune_queue_depth                            requests waiting for the model thread
    inceptune_in_flight                              requests being answered

`route` is the route's template (`/v2/models/{name}/infer`), never the raw path, so a scan of random URLs
cannot grow the series without bound: paths no route matches count as `other`.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match

METRICS_PATH = "/metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServerMetrics:
    """One registry per app, so that two servers in one process (tests) count apart."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("inceptune_requests", "Requests answered.", ("route", "method", "status"),
                                registry=self.registry)
        self.latency = Histogram("inceptune_request_seconds", "Time to answer a request.", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("inceptune_batch_images", "Images per model batch.", buckets=BATCH_BUCKETS,
                               registry=self.registry)
        self.images = Counter("inceptune_images", "Images the model ran on.", registry=self.registry)
        self.queue = Gauge("inceptune_queue_depth", "Requests waiting for the model.", registry=self.registry)
        self.in_flight = Gauge("inceptune_in_flight", "Requests being answered.", registry=self.registry)

    def batch_done(self, images: int) -> None:
        self.batch.observe(images)
        self.images.inc(images)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware counting every request by route template, method and status, and timing it.

    `routes` (the app's) name a request that a middleware refused before routing (a 401, a 413) too."""

    def __init__(self, app, metrics: ServerMetrics, routes: list):
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def observed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, observed)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route") or next((r for r in self.routes if r.matches(scope)[0] == Match.FULL), None)
            template = getattr(route, "path", None) or "other"
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - start)
