"""`--engine ray`: Ray Data `map_batches` over a pool of model actors.

Each actor builds the backbone once and then decodes and embeds batch after
batch; Ray runs decoding (reading the files in the actor) and inference of
different batches concurrently across actors, spread over the cluster's
nodes, and uses GPUs where the cluster has them. For `features`, each actor
writes its vectors into the feature store itself (the same cache as the local
engine, at a path or file:// URL every node reaches): only hashes and
statuses travel back, and the driver writes nothing, so a `train` or
`features` anywhere reads what the actors computed. Connects to an existing
cluster (`--ray-address`, or RAY_ADDRESS) or starts a local one.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from inceptune import console, hooks
from inceptune.data.scan import ImageRecord
from inceptune.errors import UserError
from inceptune.features.cache import FeatureCache
from inceptune.features.extract import ExtractionStats
from inceptune.inference.runtimes import DEFAULT_RUNTIME
from inceptune.models.weights import Weights
from inceptune.settings.schema import DEFAULTS


ACTORS_READY_S = 600  # how long the actors may take to start and load the model before the run fails


class _Embedder:
    """A Ray actor: a model loaded once, then batches of paths -> output rows.

    With `run`, the model of a run folder (probabilities); otherwise the
    backbone's `kind` features.
    """

    def __init__(self, image_size: int, kind: str | None = None, weights_path: str | None = None,
                 weights_spec: str | None = None, run: str | None = None, unsafe: bool = False, tta: int = 1,
                 runtime: str = DEFAULT_RUNTIME, store: dict | None = None):
        console.import_tensorflow_quietly()
        import keras
        import ray

        self.image_size, self.kind, self.cache, self.ood_threshold = image_size, kind, None, np.nan
        self.node = ray.get_runtime_context().get_node_id()
        if store is not None:  # the actor writes its vectors into the feature store itself
            self.cache = FeatureCache(store["root"], store["space"])
        if run is not None:
            from inceptune.inference.model import load

            model = load(run, runtime=runtime, unsafe=unsafe)
            self.infer = lambda x: model.infer_scored(x, tta)  # probabilities, then the OOD score
            if model.ood_threshold is not None:  # the answering runtime's own: a bf16 or int8 export fits its own
                self.ood_threshold = model.ood_threshold
            return
        from inceptune.features.extract import build_extractor
        from inceptune.models.backbone import build_backbone
        from inceptune.models.weights import resolve_weights

        weights = resolve_weights(weights_path or weights_spec)
        keras.utils.set_random_seed(0)  # --weights none: the same random backbone as the local engine
        extractor = build_extractor(build_backbone(weights, image_size), [kind])
        self.infer = lambda x: np.asarray(extractor.predict_on_batch(x)[kind], np.float32)

    def __call__(self, batch: dict) -> dict:
        from inceptune.data.images import load_image
        from inceptune.data.pipeline import resize_image
        from inceptune.errors import ImageError

        images, ok, errors = [], [], []
        for path in batch["path"]:
            try:
                images.append(resize_image(load_image(path), self.image_size))
                ok.append(True)
                errors.append("")
            except ImageError as exc:
                ok.append(False)
                errors.append(exc.reason)
        vectors = np.zeros((len(ok), 0), np.float32)
        if images:
            computed = np.asarray(self.infer(np.stack(images)), np.float32)
            vectors = np.zeros((len(ok), computed.shape[1]), np.float32)
            vectors[np.array(ok)] = computed
        if self.cache is not None:  # into the store; nothing but the statuses goes back
            for sha, good, vector in zip(batch["key"], ok, vectors):  # extracting: the key is the content hash
                if good:
                    self.cache.put(self.kind, str(sha), vector)
            self.cache.flush()  # an object store: published before the driver hears of them
            vectors = np.zeros((len(ok), 0), np.float32)
        return {"key": batch["key"], "path": batch["path"], "ok": np.array(ok), "error": np.array(errors),
                "vector": vectors, "writer": np.array([self.cache.writer if self.cache else ""] * len(ok)),
                "node": np.array([self.node] * len(ok)), "ood_threshold": np.full(len(ok), self.ood_threshold)}


def _map(items: list[dict], constructor: dict, batch_size: int, address: str | None, description: str):
    """Yield output batches of `_Embedder(**constructor)` over `items` (dicts with a key and a path).

    An item's key is what the caller finds its answer by: the image's content hash when extracting (the
    cache entry the actor fills), its position in the input when predicting."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=False, include_dashboard=False,
                 configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # inceptune shows its own bar
    # Dispatch once every actor has loaded its model, so the work spreads over all of them (and all nodes)
    # instead of going to whichever loaded first.
    context.wait_for_min_actors_s = ACTORS_READY_S
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        actors = gpus or max(1, min(4, int(resources.get("CPU", 1)) // 2))
        outputs = ray.data.from_items(items).map_batches(
            _Embedder, fn_constructor_kwargs=constructor, batch_size=batch_size, concurrency=actors,
            num_gpus=1 if gpus else 0, batch_format="numpy", scheduling_strategy="SPREAD")
        with console.progress(description, total=len(items)) as advance:
            for batch in outputs.iter_batches(batch_size=batch_size, batch_format="numpy"):
                yield batch
                advance(len(batch["path"]))
    except ray.exceptions.GetTimeoutError:
        raise UserError(f"The Ray cluster did not start {actors} model actor(s) within {ACTORS_READY_S} s; it may "
                        "lack the CPUs, GPUs or memory for them.") from None
    finally:
        if started_here:
            ray.shutdown()


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'inceptune[ray]'.") from None


def predict_with_ray(run: str, paths: list[str], top: int = 5, batch_size: int = DEFAULTS["batch_size"], address: str | None = None,
                     unsafe: bool = False, tta: int = 1, runtime: str = DEFAULT_RUNTIME,
                     coverage: float | None = None) -> list[dict]:
    """`predict` for a run folder on Ray: the same result dicts, in input order (each actor loads the run once)."""
    from inceptune.evaluation.conformal import check_coverage, sets_at, thresholds as set_thresholds
    from inceptune.inference.ranking import answer
    from inceptune.runs import RunFolder

    _require_ray()
    folder = RunFolder.open(run)
    classes, image_size, thresholds, ood = folder.classes, folder.image_size, folder.thresholds, folder.ood_threshold
    check_coverage(coverage)
    sets = None if folder.task == "multilabel" else folder.sets
    at = None if sets is None else set_thresholds(sets, len(classes), coverage)
    items = [{"key": str(i), "path": p} for i, p in enumerate(paths)]
    results: list[dict | None] = [None] * len(paths)
    constructor = {"image_size": image_size, "run": str(folder.path.resolve()), "unsafe": unsafe, "tta": tta,
                   "runtime": runtime}
    for batch in _map(items, constructor, batch_size, address, "Predicting (Ray)"):
        for index, path, ok, error, probs, own in zip(batch["key"], batch["path"], batch["ok"], batch["error"],
                                                      batch["vector"], batch["ood_threshold"]):
            if not ok:
                results[int(index)] = {"path": str(path), "error": str(error)}
                continue
            in_set = None if sets is None else sets_at(probs[:-1], sets["score"], at)[0]
            threshold = ood if ood is None or np.isnan(own) else float(own)  # the actor's runtime's threshold
            results[int(index)] = {"path": str(path), **answer(classes, probs[:-1], top, thresholds,
                                                               (float(probs[-1]), threshold), in_set)}
    return results


def extract_with_ray(records: list[ImageRecord], cache: FeatureCache, kind: str, weights: Weights,
                     image_size: int, batch_size: int, address: str | None = None) -> ExtractionStats:
    """Compute the missing `kind` vectors of `records` on Ray: the actors put them in the cache themselves."""
    _require_ray()
    start = time.perf_counter()
    unique = {r.sha256: r.path for r in records}
    todo = [{"key": h, "path": unique[h]} for h in cache.missing([kind], list(unique))]
    stats = ExtractionStats(images=len(unique), from_cache=len(unique) - len(todo))
    if todo:
        constructor = {"image_size": image_size, "kind": kind, "weights_spec": weights.spec,
                       "weights_path": str(weights.path) if weights.path else None,
                       "store": {"root": cache.root, "space": cache.space}}
        writers, nodes = set(), set()
        for batch in _map(todo, constructor, batch_size, address, "Extracting features (Ray)"):
            for path, ok, error, writer, node in zip(batch["path"], batch["ok"], batch["error"], batch["writer"],
                                                     batch["node"]):
                if ok:
                    writers.add(str(writer))
                    nodes.add(str(node))
                    hooks.reached("feature_cached")
                    stats.computed += 1
                else:
                    stats.failed.append((str(path), str(error)))
        console.info(f"Ray: {stats.computed} vectors written into the feature store {cache.root} by "
                     f"{len(writers)} actor(s) on {len(nodes)} node(s); the driver wrote none.")
    stats.seconds = time.perf_counter() - start
    return stats
