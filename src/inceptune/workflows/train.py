"""`train`: a folder of images in, a fine-tuned Inception-v3 classifier and its run folder out.

    settings (checked) -> prepare: the data, the run folder, extract_and_group (one backbone pass per image;
          near-duplicates kept in one split) -> extract_views (one per augmented view)
          -> fit_two_phases: train_head (phase 1), fine_tune (phase 2)
          -> the held-out split's metrics, plots and report -> RunFolder.write_finished
          -> export_fastest (--export auto): the fastest checked ONNX/OpenVINO export for this machine

With `arch` set, `train` runs the from-scratch recipe instead (workflows/scratch.py).
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

from inceptune import console
from inceptune.data.dataset import Dataset, manifest_rows
from inceptune.deploy.auto_export import deployed_record, export_fastest
from inceptune.engines.devices import Strategy, training_devices
from inceptune.errors import UserError
from inceptune.evaluation.baseline import baseline_scores
from inceptune.evaluation.calibration import at_temperature
from inceptune.evaluation.evaluate import write_evaluation
from inceptune.features.extract import ExtractionStats
from inceptune.runs import RunContents, RunFolder
from inceptune.settings import Settings, documented, resolve
from inceptune.tracking import check_tracker, log_run
from inceptune.training.calibrate import calibrate, fit_prediction_sets, thresholds_of
from inceptune.training.checkpoint import Checkpoint
from inceptune.training.class_weights import class_weights
from inceptune.training.extraction import extract_views
from inceptune.training.ood import OodBranch, fit_ood
from inceptune.training.phases import Resume
from inceptune.training.recipe import fit_recipe
from inceptune.training.splits import SplitData
from inceptune.training.two_phase import Fitted
from inceptune.workflows.prepare import prepare
from inceptune.workflows.result import TrainResult, default_out, recipe_rows, say_results
from inceptune.workflows.scratch import ScratchTrainer

_DATA = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
_CONFIG = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None)


@documented("train", [_DATA, _CONFIG])
def train(data=None, *, config=None, **settings) -> TrainResult:
    """Train a classifier on a folder of class subfolders (or arrays, or a multi-label CSV).

    `config` names a JSON, YAML or TOML file of settings (a run's config.json
    replays that run); keywords override it. Every setting is checked before
    any image is read; one the chosen recipe does not use is refused.

    Examples:
        >>> import inceptune
        >>> result = inceptune.train("photos/", out="runs/photos", weights="imagenet")
        >>> result.metrics["val"]["accuracy"]
        >>> inceptune.train(config="runs/photos/config.json", out="runs/again")  # the same run again
    """
    s = resolve("train", {**settings, **({"data": data} if data is not None else {})}, config)
    if s.run.track:
        check_tracker(s.run.track)  # before any image is read, not after the training
    if s.scratch.arch and s.run.distribute == "multi-worker":
        raise UserError("--distribute multi-worker trains the pretrained recipe; a network from scratch (--arch) "
                        "trains in one process.")
    with training_devices(s.run.precision, s.run.distribute) as strategy:
        if (devices := strategy.describe()) is not None:
            console.info(devices)
        return ScratchTrainer(s).run() if s.scratch.arch else Trainer(s, strategy).run()


class Trainer:
    """The pretrained recipe: cached features, the head, fine-tuning, the run folder, under `strategy` (the run's
    devices; on a multi-worker cluster, the chief writes the run folder)."""

    def __init__(self, settings: Settings, strategy: Strategy = Strategy()):
        self.settings, self.strategy = settings, strategy

    def run(self) -> TrainResult:
        s, strategy = self.settings, self.strategy

        # === One backbone pass per image (and per augmented view), every source the search may choose ===
        # (the base keeps train's --head: a linear head on a multi-label CSV is refused before any extraction)
        prepared = prepare(s, on_data=self._open, say_weights=True,
                           classifier_settings=s.replace(feature_block="mixed10", pooling="avg"), strategy=strategy)
        out, run, checkpoint, state = prepared.out
        dataset, weights, head, cache = prepared.dataset, prepared.weights, prepared.head, prepared.cache
        source, base, extraction = prepared.source, prepared.classifier, prepared.extraction
        views = extract_views(dataset.split("train"), cache, base, s)

        # === The recipe, chosen on train + val; fitted on train (val held out), then refitted on train + val ===
        fit = fit_recipe(weights, dataset, cache, s, views, head,
                         log_dir=run.file("tensorboard") if s.run.tensorboard else None,
                         resume=Resume(checkpoint, state, s.data.seed), record_file=run.file("search.json"),
                         strategy=strategy)
        if not strategy.chief:  # every collective step is done: the chief finishes alone
            checkpoint.clear()
            shutil.rmtree(run.path, ignore_errors=True)
            console.info(f"Worker {strategy.index}: training finished; the chief writes the run folder {out}.")
            return TrainResult(out, {})
        s, classifier = fit.settings, fit.classifier
        calibration = calibrate(fit, s)  # folded into the final model: test answers below are calibrated
        thresholds = thresholds_of(calibration, dataset.classes)
        sets = fit_prediction_sets(fit, s, calibration)  # "rose or tulip", at the coverage asked for
        ood = fit_ood(fit, s)  # "none of these": the saved model's second output

        # === Scores of every held-out split, then the run folder ===
        # val: the fit on train alone, before calibration (calibration was fitted on these answers)
        probabilities = {"val": fit.val} if fit.val is not None else {}
        if dataset.split("test"):
            probabilities["test"] = fit.probabilities("test")
        metrics = {split: fit.held.scores(split, probabilities[split], thresholds if split == "test" else None)
                   if split in probabilities else None for split in ("val", "test")}
        metrics.update(self._timings(extraction, views.stats, views.summary, fit.first))
        metrics.update(search=fit.search, refit=fit.refit, baseline=baseline_scores(dataset, cache, bool(fit.refit)),
                       calibration=calibration, ood=ood.record if ood else None,
                       sets={k: v for k, v in sets.items() if k not in ("scores", "score_classes")} if sets else None)
        contents = RunContents(classifier.model if ood is None else classifier.with_ood(ood.branch), dataset.classes,
                               task(dataset, classifier.binary), s.as_dict(),
                               {"image_size": s.recipe.image_size, "weights": weights.describe(),
                                "weights_fingerprint": weights.fingerprint, **source},
                               fit.first.history, manifest_rows(dataset), dataset.summary(), calibration,
                               ood.record if ood else None, sets)
        run.write_finished(contents, metrics, lambda: self._report(run, dataset, fit.held, probabilities,
                                                                     recipe_rows(metrics), calibration, thresholds,
                                                                     ood, metrics["sets"]))
        checkpoint.clear()
        say_results(run.path, metrics)
        if s.run.export == "auto":
            metrics["deployed"] = deployed_record(run.path, export_fastest(run.path, s.run.max_accuracy_drop))
            run.write_json("metrics.json", metrics)
        if s.run.track:
            log_run(run, s.run.track, s.run.tracking_uri)
        return TrainResult(run.path, metrics)

    def _open(self, dataset: Dataset) -> tuple[Path, RunFolder, Checkpoint, dict | None]:
        """Once the data is read: the class weights' names checked, the run folder (a worker of a cluster: its
        checkpoint folder beside the chief's) and the checkpoint to resume from, which every worker agrees on."""
        s, strategy = self.settings, self.strategy
        class_weights(s.recipe.class_weight, dataset)  # a class name that is not in the data fails now
        out = Path(s.run.out or default_out(s.data.data))
        if not strategy.chief:  # the chief writes the run folder; this worker, its checkpoint
            run = RunFolder.create(strategy.cluster.scratch(out), overwrite=True)
        else:
            run = RunFolder.create(out, overwrite=s.run.overwrite)
            console.info(f"Run folder: {run.path}")
        checkpoint = Checkpoint(run.path, s)
        state = checkpoint.load() if s.run.resume else checkpoint.clear()
        if s.run.resume and state is None:
            console.warn(f"{run.path} has no checkpoint to resume from; starting from the beginning")
        strategy.agree("the checkpoint to resume from", state and [state["phase"], state["epochs_done"]])
        return out, run, checkpoint, state

    @staticmethod
    def _timings(extraction: ExtractionStats, views: ExtractionStats, augmentation: dict | None,
                 fitted: Fitted) -> dict:
        phase2 = [h for h in fitted.history if h["phase"] == "fine-tune"]
        return {"phase1": {"seconds": round(extraction.seconds + views.seconds + fitted.phase1_seconds, 3),
                           "features": extraction.as_dict(), "augmentation": augmentation},
                "phase2": {"seconds": round(fitted.phase2_seconds, 3), "epochs_run": len(phase2),
                           "kept": any(h["kept"] for h in phase2), **fitted.phase2_data}}

    @staticmethod
    def _report(run: RunFolder, dataset: Dataset, splits: SplitData, probabilities: dict,
                recipe: list[tuple[str, str]], calibration: dict | None, thresholds, ood: OodBranch | None,
                sets: dict | None = None) -> dict | None:
        """Metrics, plots and report.html of the held-out split (test, else val), from the cached features;
        with a calibration, that split's ECE before and after it joins metrics.json's record, and with
        prediction sets (`sets`: their record in metrics.json), the test split's coverage and set sizes."""
        split = "test" if "test" in probabilities else "val" if "val" in probabilities else None
        if split is None:
            return None
        records = dataset.split(split)
        if dataset.multilabel:
            from inceptune.evaluation.multilabel import write_multilabel_evaluation

            write_multilabel_evaluation(run.path, [r.path for r in records], splits.labels(split),
                                        probabilities[split], dataset.classes, f"the {split} split",
                                        thresholds if split == "test" else None)
            return {"report": {"split": split}}
        probs = probabilities[split]
        if split == "val" and calibration and calibration.get("temperature"):  # the model saved answers these
            probs = at_temperature(probs, calibration["temperature"])
        evaluation = write_evaluation(run.path, records, dataset.classes, probs, folder=run,
                                      source=f"the {split} split", recipe=recipe,
                                      ood_scores=ood.scores(split) if ood else None)
        out = {"report": {"split": split}}
        if split == "test" and evaluation.get("sets") and sets:  # the coverage the saved model gives, held out
            out["sets"] = {**sets, "test": evaluation["sets"]}
        measured = evaluation.get("calibration")
        if split == "test" and measured and calibration:
            out["calibration"] = {**calibration, "test_ece_before": measured["ece_before"],
                                  "test_ece_after": measured["ece_after"]}
        return out


def task(dataset: Dataset, binary: bool) -> str:
    return "multilabel" if dataset.multilabel else "binary" if binary else "multiclass"
