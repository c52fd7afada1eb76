"""Named points in long work, where tests (and tools) can act at a known moment.

Code calls `reached(event)` at a point worth naming: a feature vector
written to the cache, an epoch finished, a run-folder file written, a model
loaded. Two things can listen:

- `listen(event, fn)`: a callback in this process (a test counts model loads).
- the environment variable INCEPTUNE_SIGNAL_AT="EVENT:N:SIGNAL" (e.g.
  "feature_cached:8:INT"): the process sends itself SIGNAL when EVENT is
  reached for the N-th time. Interrupt tests use it to press Ctrl-C at an
  exact point of a real run instead of racing a file count.

Events: feature_cached, epoch_end, run_file_written, model_loaded, trial_finished (a search trial),
runtimes_timed (`--runtime auto` timed a run's exports on this machine), extractor_converted (the feature
extractor converted to OpenVINO), extraction_runtime_chosen (OpenVINO checked against Keras, and timed),
batch_started (serve's model thread is given a micro-batch), image_decoding (serve starts decoding an uploaded
image; `active`: how many it is decoding now).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

from inceptune.errors import UserError

SIGNAL_ENV = "INCEPTUNE_SIGNAL_AT"

EVENTS = ("feature_cached", "epoch_end", "run_file_written", "model_loaded", "trial_finished", "runtimes_timed",
          "extractor_converted", "extraction_runtime_chosen", "batch_started", "image_decoding")

_listeners: dict[str, list[Callable[[dict], None]]] = defaultdict(list)
_counts: Counter = Counter()
_parsed: dict[str, tuple[str, int, int]] = {}  # INCEPTUNE_SIGNAL_AT -> (event, count, signal number)


def reached(event: str, **details) -> None:
    """Mark that `event` happened (with `details` for listeners)."""
    for fn in list(_listeners.get(event, ())):
        fn(details)
    spec = os.environ.get(SIGNAL_ENV)
    if not spec:
        return
    name, count, signum = _parsed.get(spec) or _parse(spec)
    if name == event:
        _counts[event] += 1
        if _counts[event] == count:
            os.kill(os.getpid(), signum)


def _parse(spec: str) -> tuple[str, int, int]:
    name, _, rest = spec.partition(":")
    count, _, signame = rest.partition(":")
    signum = getattr(signal, f"SIG{signame or 'INT'}", None)
    if name not in EVENTS or not count.isdigit() or signum is None:
        raise UserError(f"{SIGNAL_ENV} must be EVENT:N[:SIGNAL] with EVENT one of {', '.join(EVENTS)} "
                         f"(e.g. epoch_end:3:INT), not {spec!r}")
    _parsed[spec] = (name, int(count), signum)
    return _parsed[spec]


def reset() -> None:
    """Start counting events afresh (each command counts from its own start); check INCEPTUNE_SIGNAL_AT."""
    _counts.clear()
    if os.environ.get(SIGNAL_ENV):
        _parse(os.environ[SIGNAL_ENV])


@contextlib.contextmanager
def listen(event: str, fn: Callable[[dict], None]) -> Iterator[None]:
    """Call `fn(details)` every time `event` is reached inside the block."""
    _listeners[event].append(fn)
    try:
        yield
    finally:
        _listeners[event].remove(fn)
