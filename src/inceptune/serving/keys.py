"""API keys for `serve`: where they come from, and the check in front of every route but health.

A key comes from `--api-key`, else the file `--api-key-file` (one key per line, `#` comments), else the
environment variable INCEPTUNE_API_KEY. Clients send it as `Authorization: Bearer KEY` (what tritonclient,
KServe and most HTTP clients do with a token) or `X-API-Key: KEY`. Keys are compared in constant time.

Binding to an address beyond loopback with no key refuses to start unless `--no-auth` says so explicitly.
"""

from __future__ import annotations

import hmac
import json
import os
from pathlib import Path

from inceptune.errors import UserError

KEY_ENV_VAR = "INCEPTUNE_API_KEY"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
OPEN_PATHS = ("/health", "/v2/health/live", "/v2/health/ready")  # what load balancers and probes call


def api_keys(api_key: str | None = None, api_key_file: str | None = None) -> list[str]:
    """The keys `serve` accepts (none: no authentication)."""
    if api_key:
        return [api_key]
    if api_key_file:
        try:
            lines = Path(api_key_file).read_text().splitlines()
        except OSError as exc:
            raise UserError(f"Cannot read --api-key-file {api_key_file} ({exc.strerror or exc}).") from None
        keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not keys:
            raise UserError(f"--api-key-file {api_key_file} holds no key (one per line).")
        return keys
    return [os.environ[KEY_ENV_VAR]] if os.environ.get(KEY_ENV_VAR) else []


def check_exposure(host: str, keys: list[str], no_auth: bool) -> None:
    if host not in LOOPBACK and not keys and not no_auth:
        raise UserError(f"Serving on {host} without a key would let anyone who can reach this machine use the "
                        f"model: give --api-key (or --api-key-file, or ${KEY_ENV_VAR}), or --no-auth to allow it.")


class KeyMiddleware:
    """ASGI middleware: 401 with a JSON error unless the request carries one of `keys` (health is open)."""

    def __init__(self, app, keys: list[str]):
        self.app, self.keys = app, [k.encode() for k in keys]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key") or b""
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            given = given or token.strip()
        valid = False
        for key in self.keys:  # every key compared, each in constant time
            valid |= hmac.compare_digest(given, key)
        if not valid:
            body = json.dumps({"error": "A valid API key is required: send 'Authorization: Bearer KEY' or "
                                        "'X-API-Key: KEY'."}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
