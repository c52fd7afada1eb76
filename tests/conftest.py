"""Shared fixtures: the ../shared resources (skipped with a reason when absent), generated datasets, a
small real network for mechanics, and small trained runs built once per test run for every worker.

Two backbones, one switch: `--weights PATH`. Most tests check mechanics (exports agree, signals stop
cleanly, a server answers, a cluster splits work), so they train on NARROW_WEIGHTS, a seeded Inception-v3
of width 1/8 (models/backbone.py's write_narrow_weights: the same layers, block names, feature sources and
saved-model structure as keras.applications' InceptionV3, a sixtieth of its weights), and run the same
code paths in seconds, with or without ../shared. Tests of what pretrained features give (accuracy, near
duplicates, label issues, OOD) use SHARED_WEIGHTS, the real network.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

# Every test session gets its own empty feature cache and Keras home, so
# results never depend on what an earlier run left behind.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="inceptune-tests-"))
# What all the xdist workers of one test run share (the narrow weights, the runs built once for all of them).
RUN_ROOT = Path(tempfile.gettempdir()) / f"inceptune-tests-run-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}"
NARROW_WIDTH = 0.125
NARROW_WEIGHTS = RUN_ROOT / "inception_v3_width_0.125.weights.h5"
os.environ["INCEPTUNE_CACHE"] = str(_SESSION_TMP / "cache")
os.environ["KERAS_HOME"] = str(_SESSION_TMP / "keras")
os.environ.pop("INCEPTUNE_WEIGHTS", None)
# train ends by exporting (--export auto): minutes and ~11 GB per run at 299. Tests that check it ask for it.
os.environ["INCEPTUNE_EXPORT"] = "none"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share the cores: each gets its share, and its children too
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_var, _share)

import inceptune  # noqa: E402
from inceptune import console  # noqa: E402

console.import_tensorflow_quietly()

DURATIONS = Path(__file__).with_name("durations.json")  # seconds per test (setup + call), from a CI run's --durations


def pytest_collection_modifyitems(session, config, items):
    """Each module's tests together, the module with the longest test first, and within a module the longest
    test first (tests/durations.json; tests not listed there are short). xdist hands out tests as workers free
    up, so a long test started last would keep one worker busy while the other idles; and a module's tests
    side by side keep its module-scoped fixtures (a server, a trained run) built once per worker, where
    tests interleaved with other modules' would tear them down and build them again. The order is fixed, not
    measured at run time, so every worker collects the same list."""
    known = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}

    def base(nodeid: str) -> str:  # without the "@group" xdist's loadgroup appends
        return nodeid.rpartition("@")[0] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid

    seconds = {item.nodeid: known.get(base(item.nodeid), 0.0) for item in items}
    longest: dict[str, float] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        longest[module] = max(longest.get(module, 0.0), seconds[item.nodeid])
    items.sort(key=lambda item: (-longest[item.nodeid.split("::")[0]], item.nodeid.split("::")[0],
                                 -seconds[item.nodeid]))


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml): two workers on a 2-core machine, at most four anywhere, since every
    worker holds TensorFlow and the session's trained runs (a few GB)."""
    return max(2, min(4, os.cpu_count() or 1))


MEMORY_LOG = os.environ.get("INCEPTUNE_TEST_MEMORY")  # a file: each test's peak resident memory is appended to it


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With INCEPTUNE_TEST_MEMORY=FILE, record each test's peak resident memory (this process's, setup to
    teardown): the kernel's high-water mark, reset before the test (/proc/self/clear_refs)."""
    if not MEMORY_LOG:
        return (yield)
    Path("/proc/self/clear_refs").write_text("5")
    try:
        return (yield)
    finally:
        peak = next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
        with open(MEMORY_LOG, "a") as log:
            log.write(f"{int(peak) // 1024}\t{item.nodeid}\n")


def _memory_used_mib() -> int:
    """What the whole machine uses now (MemTotal - MemAvailable): every worker, child process and server."""
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) // 1024


class _MachineMemory:
    """With INCEPTUNE_TEST_MEMORY, the controlling process also records the whole suite's peak: the machine's
    used memory, read every 0.2 s for the length of the run (the workers' per-test peaks miss their children)."""

    def __init__(self):
        import threading

        self.start = self.peak = _memory_used_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="machine-memory", daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _memory_used_mib())

    def finish(self) -> str:
        self._stop.set()
        self._thread.join()
        return (f"{self.peak}\tthe whole suite: the machine's peak used memory, MiB ({self.peak - self.start} above "
                f"the {self.start} in use when it started)")


def pytest_sessionstart(session):
    if MEMORY_LOG and not os.environ.get("PYTEST_XDIST_WORKER"):
        session.config._machine_memory = _MachineMemory()


def pytest_terminal_summary(terminalreporter, config):
    watcher = getattr(config, "_machine_memory", None)
    if watcher is not None:
        line = watcher.finish()
        with open(MEMORY_LOG, "a") as log:
            log.write(line + "\n")
        peak, what = line.split("\t")
        terminalreporter.write_line(f"memory: {what}: {peak}")


SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_WEIGHTS = SHARED / "weights" / "inception_v3_imagenet2015_partial_notop.weights.h5"
HYMENOPTERA = SHARED / "datasets" / "hymenoptera"
FLOWERS = SHARED / "datasets" / "flowers5"

# Converting the full Inception-v3 to ONNX peaks near 11 GB (tf2onnx; INCEPTUNE_TEST_MEMORY measures it), so the
# fast suite exports only the narrow network. What is still heavy beside another test (Ray clusters of several
# processes, two multi-worker TensorFlow processes, NNCF's accuracy control) takes turns on one worker: with the
# longest tests first, the Ray and the multi-worker tests side by side took 2.3 and 1.9 times as long.
EXPORTS = pytest.mark.xdist_group("exports")
# Each live `serve` is a process of its own (~1.3 GB at 150 px): the serving tests take turns on one worker, so
# at most one server is up beside an export (two servers and an ONNX conversion got a CI worker killed).
SERVING = pytest.mark.xdist_group("serving")

SMALL_SIZE = 150  # small enough for CI, large enough for ants vs bees


@contextmanager
def _run_lock(name: str):
    """A lock all the workers of this test run share (a file lock in RUN_ROOT)."""
    from filelock import FileLock

    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    with FileLock(str(RUN_ROOT / f".{name}.lock")):
        yield


def built_once(name: str, build) -> Path:
    """RUN_ROOT/name, made by `build(path)` in the first worker that asks and reused by every other worker
    of this test run (they wait on a shared lock; a build that failed is tried again by the next one)."""
    target = RUN_ROOT / name
    with _run_lock(name):
        done = RUN_ROOT / f".{name}.built"
        if not done.is_file():
            if target.is_dir():
                shutil.rmtree(target)
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session", autouse=True)
def narrow_weights() -> Path:
    """NARROW_WEIGHTS, written once per test run (seeded: the same file for every worker)."""
    from inceptune.models.narrow import write_narrow_weights

    with _run_lock("narrow-weights"):
        if not NARROW_WEIGHTS.is_file():
            tmp = NARROW_WEIGHTS.with_name(f".{os.getpid()}.tmp.weights.h5")
            write_narrow_weights(tmp, NARROW_WIDTH, seed=0)
            tmp.replace(NARROW_WEIGHTS)
    return NARROW_WEIGHTS


# The runs built once for every worker, the costliest first. Under xdist each worker builds its share of those
# the collected tests use before its first test, so no worker sits waiting on a lock while another builds.
PREBUILT = ("trained_run", "pretrained_flowers_run", "flowers_run")


@pytest.fixture(scope="session", autouse=True)
def prebuilt_runs(request, narrow_weights):
    """Under xdist, this worker's share of PREBUILT (those the collected tests use), built before its first test."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or count < 2:
        return
    used = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    needed = [name for name in PREBUILT if name in used]
    for name in needed[int(worker.removeprefix("gw")) % count::count]:
        try:
            request.getfixturevalue(name)
        except pytest.skip.Exception:  # without ../shared the tests that use it skip on their own
            pass


requires_shared = pytest.mark.skipif(
    not SHARED_WEIGHTS.is_file() or not HYMENOPTERA.is_dir(),
    reason=f"needs the shared weights and datasets in {SHARED}",
)


def make_image(path: Path, color=(200, 30, 30), size=(64, 48), mode="RGB", fmt=None, shape="square") -> Path:
    """Write a small synthetic image: a coloured shape on a gray noisy background."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(zlib.crc32(str(path).encode()))  # the same pixels for a path in every run
    background = rng.normal(128, 20, (size[1], size[0], 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(background)
    draw = ImageDraw.Draw(img)
    w, h = size
    box = [w // 4, h // 4, 3 * w // 4, 3 * h // 4]
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=color)
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def make_color_dataset(root: Path, per_class: int = 10, classes=("blue", "red")) -> Path:
    """Two (or more) classes told apart by colour: learnable even from random weights."""
    colors = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}
    for name in classes:
        for i in range(per_class):
            make_image(root / name / f"{name}_{i:02d}.jpg", color=colors[name], size=(40 + i, 40))
    return root


def tiny_classifier(num_classes: int, multilabel: bool = False, image_size: int = 32):
    """An inceptune classifier (models/classifier.py) on a one-layer backbone: a real Keras model in seconds."""
    import keras

    from inceptune.models.classifier import build_classifier

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv")(inputs)
    backbone = keras.Model(inputs, keras.layers.Activation("relu", name="mixed10")(x), name="tiny")
    return build_classifier(backbone, num_classes, image_size, multilabel=multilabel)


def copy_subset(src: Path, dst: Path, per_class: int) -> Path:
    """Copy the first `per_class` images of each class folder (keeping split folders)."""
    for class_dir in sorted(p for p in src.rglob("*") if p.is_dir() and not any(c.is_dir() for c in p.iterdir())):
        files = sorted(f for f in class_dir.iterdir() if f.is_file())[:per_class]
        target = dst / class_dir.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, target / f.name)
    return dst


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, isolated: bool = False
            ) -> subprocess.CompletedProcess:
    """Run the `inceptune` command with ARGS: its exit code, stdout and stderr.

    By default in this process, through the same entry point as the installed
    command (`inceptune.cli.main`, which turns errors into one sentence and an
    exit code), with `env` applied for the call: a fresh interpreter would
    spend most of a short command importing TensorFlow again. `isolated` (and
    Ray, which keeps a cluster per process) runs `python -m inceptune` instead.
    """
    if isolated or "ray" in args:
        return subprocess.run([sys.executable, "-m", "inceptune", *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
    import contextlib
    import io

    from inceptune import cli

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv = dict(os.environ), sys.argv
    os.environ.update(env or {})
    sys.argv = ["inceptune", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["inceptune", *args], code, out.getvalue(), err.getvalue())


def _small_run(data: Path, name: str, weights: Path, **settings):
    """A run trained once per test run for every worker (built_once), whose cached features this worker's
    cache then holds too, as if it had trained the run itself."""
    if not Path(weights).is_file():
        pytest.skip(f"needs {weights}")
    import inceptune
    from inceptune.workflows.result import TrainResult

    def build(folder: Path) -> None:
        with own_cache(folder / "cache"):  # both phases with the dense head, as given, fitted once
            inceptune.train(str(data), out=str(folder / name), weights=str(weights), image_size=SMALL_SIZE, epochs=15,
                            batch_size=16, search="none", refit=False, duplicate_similarity=1.0, **settings)

    folder = built_once(f"run-{name}", build)
    merge_cache(folder / "cache", Path(os.environ["INCEPTUNE_CACHE"]))
    run = folder / name
    return TrainResult(run, json.loads((run / "metrics.json").read_text()))


@contextmanager
def own_cache(folder: Path):
    """INCEPTUNE_CACHE at `folder` for the block: a shared build's own cache, merged into each worker's after."""
    saved = os.environ["INCEPTUNE_CACHE"]
    os.environ["INCEPTUNE_CACHE"] = str(folder)
    try:
        yield
    finally:
        os.environ["INCEPTUNE_CACHE"] = saved


def merge_cache(source: Path, target: Path) -> None:
    """Every entry of the feature cache at `source` that `target` lacks, put through the cache itself; and
    each space's timings and remembered runtime choices, where `target` has none yet."""
    from inceptune.features.cache import FeatureCache

    for space_file in sorted(Path(source).glob("*/space.json")):
        space = json.loads(space_file.read_text())
        src, dst = FeatureCache(source, space), FeatureCache(target, space)
        try:
            for kind, sha in src.entries():
                if not dst.has(kind, sha):
                    dst.put(kind, sha, src.get(kind, sha))
            dst.flush()
        finally:
            src.close()
            dst.close()
        if (space_file.parent / "runtimes").is_dir() and not (dst.dir / "runtimes").exists():
            shutil.copytree(space_file.parent / "runtimes", dst.dir / "runtimes")


def cached_entries(root: Path) -> dict[tuple[str, str], np.ndarray | None]:
    """Every indexed entry of every feature space under `root`, read back through the cache (a torn or
    damaged entry reads as None)."""
    from inceptune.features.cache import FeatureCache

    found = {}
    for space in Path(root).glob("*/space.json"):
        store = FeatureCache(root, json.loads(space.read_text()))
        found.update({(kind, sha): store.get(kind, sha) for kind, sha in store.entries()})
    return found


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@contextmanager
def headless_chromium():
    """A real headless Chromium (Debian's) driven by Playwright; skips when Chromium is not installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Chromium (Debian package chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            yield browser
        finally:
            browser.close()


def one_sentence_error(proc) -> str:
    """Assert a process failed the user-error way (exit 2, one `error:` line, no traceback); its stderr, unwrapped."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return " ".join(proc.stderr.split())  # rich wraps long lines; join them back


def _shared_subset(source: Path, per_class: int) -> Path:
    """The first `per_class` photos of each class of a shared dataset, copied once per test run (the same
    files for every worker)."""
    if not source.is_dir():
        pytest.skip(f"needs {source}")
    return built_once(f"{source.name}-small", lambda target: copy_subset(source, target, per_class=per_class))


@pytest.fixture(scope="session")
def small_hymenoptera() -> Path:
    """30 photos of each hymenoptera class and split."""
    return _shared_subset(HYMENOPTERA, per_class=30)


@pytest.fixture(scope="session")
def trained_run(small_hymenoptera):
    """A run trained at 150x150 on 60 train / 60 val images with the shared (real) weights, both phases."""
    return _small_run(small_hymenoptera, "small", SHARED_WEIGHTS, fine_tune_epochs=2, test_split=0.2)


def private_copy(result, tmp_path: Path):
    """A copy of a shared run for a test that writes into the run folder (`evaluate` on the test split writes its
    plots and report there): the shared folder stays as train left it while other workers read or copy it."""
    from inceptune.workflows.result import TrainResult

    copy = tmp_path / result.run.name
    shutil.copytree(result.run, copy)
    return TrainResult(copy, result.metrics)


@pytest.fixture
def own_trained_run(trained_run, tmp_path):
    return private_copy(trained_run, tmp_path)


@pytest.fixture(scope="session")
def small_flowers() -> Path:
    """12 photos of each flowers5 class."""
    return _shared_subset(FLOWERS, per_class=12)


@pytest.fixture(scope="session")
def flowers_run(small_flowers):
    """A five-class run at 150x150 on 60 flowers5 images (a third held out for testing), both phases, on the
    narrow network: for the mechanics of exports, serving, evaluation and reports."""
    return _small_run(small_flowers, "flowers", NARROW_WEIGHTS, fine_tune_epochs=1, val_split=0.2,
                      test_split=0.34)


@pytest.fixture(scope="session")
def pretrained_flowers_run(small_flowers):
    """flowers_run's recipe on the real network: for what pretrained features give (OOD scores, accuracy)."""
    return _small_run(small_flowers, "flowers-pretrained", SHARED_WEIGHTS, fine_tune_epochs=1, val_split=0.2,
                      test_split=0.34)


@pytest.fixture
def own_flowers_run(flowers_run, tmp_path):
    return private_copy(flowers_run, tmp_path)


@pytest.fixture
def own_pretrained_flowers_run(pretrained_flowers_run, tmp_path):
    return private_copy(pretrained_flowers_run, tmp_path)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 endpoint on localhost: moto's server, over HTTP, in a thread of this process (its start waits
    on the server's own ready event). AWS_* in this process's environment point every client at it, and
    every process started from here (the CLI, Ray nodes and their actors) inherits them."""
    pytest.importorskip("s3fs", reason="needs s3fs: pip install 'inceptune[s3]'")
    server_module = pytest.importorskip("moto.server", reason="needs moto's server: pip install 'moto[server]'")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "inceptune-tests", "AWS_SECRET_ACCESS_KEY": "inceptune-tests",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env["AWS_ENDPOINT_URL"]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def bucket(s3_endpoint):
    """A new, empty bucket on the local S3 endpoint: its s3:// URL."""
    import secrets

    import s3fs

    name = f"inceptune-{secrets.token_hex(4)}"
    s3fs.S3FileSystem().mkdir(name)
    return f"s3://{name}"


def upload(folder: Path, url: str) -> str:
    """Every file under `folder` into the object store at `url`, keeping relative paths; returns `url`."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(url)
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        fs.put_file(str(f), f"{base}/{f.relative_to(folder).as_posix()}")
    return url
