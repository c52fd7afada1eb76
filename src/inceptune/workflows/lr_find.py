"""`lr-find`: the learning-rate range test (Smith, 2015) for the head or for fine-tuning.

The learning rate grows exponentially from `min_lr` to `max_lr` over
`steps` mini-batches of the cached training features while the loss is
recorded; the run stops early once the loss diverges (four times its best).
The loss is smoothed (exponential moving average with bias correction, as
fastai does), and the suggestion is the rate where the smoothed loss falls
fastest against log(learning rate). The plot marks the suggestion and the
range around it where the loss falls at least half as fast.

Only cached features are used: the head test costs milliseconds per step,
the fine-tune test a forward and backward pass of the unfrozen blocks.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from inceptune import console
from inceptune.errors import UserError
from inceptune.features.extract import POOLED, activations_kind, read_features
from inceptune.models.backbone import freeze
from inceptune.settings import Settings, documented, resolve
from inceptune.training.splits import SplitData
from inceptune.workflows.prepare import prepare


@dataclass
class LrFinding:
    learning_rates: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    fastest_range: tuple[float, float]  # where the smoothed loss falls at least half as fast as at its steepest
    plot: str

    def as_dict(self) -> dict:
        return {"suggestion": self.suggestion, "fastest_range": list(self.fastest_range), "plot": self.plot,
                "learning_rates": self.learning_rates, "losses": self.losses, "smoothed": self.smoothed}


_DATA = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
_CONFIG = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None)


@documented("lr_find", [_DATA, _CONFIG])
def lr_find(data=None, *, config=None, **settings) -> LrFinding:
    """Run the range test on `data` for `phase` (head or fine-tune); writes the loss-vs-LR plot to `out`.

    Examples:
        >>> inceptune.lr_find("photos/", phase="head").suggestion
        0.0021
    """
    s = resolve("lr_find", {**settings, **({"data": data} if data is not None else {})}, config)
    phase, sweep = s.sweep.phase, s.sweep
    # What extraction caches: the activations entering --unfreeze-from only for the fine-tune test.
    s = s.replace(fine_tune_epochs=1 if phase == "fine-tune" else 0)
    # The classifier the range test trains extracts too (built before the cache is opened).
    prepared = prepare(s, classifier_settings=s)
    dataset, classifier, cache = prepared.dataset, prepared.classifier, prepared.cache
    splits = SplitData(dataset, classifier, cache, s)
    records, labels = dataset.split("train"), splits.labels("train")
    classifier.adapt(read_features(records, cache, POOLED))
    if phase == "head":
        model, kind = classifier.head_model(), POOLED
    else:
        freeze(classifier.backbone, s.recipe.unfreeze_from)
        model, kind = classifier.top_model(s.recipe.unfreeze_from), activations_kind(s.recipe.unfreeze_from)
    x = read_features(records, cache, kind)
    rates, losses = _sweep(model, classifier, x, labels, s, sweep.min_lr, sweep.max_lr, sweep.steps, phase)
    finding = _suggest(rates, losses)
    finding.plot = s.sweep.plot or f"lr-find-{phase}.png"
    _plot(finding, phase, Path(finding.plot))
    low, high = finding.fastest_range
    console.info(f"Suggested {'--lr' if phase == 'head' else '--fine-tune-lr'} {finding.suggestion:.2g} (the loss "
                 f"falls fastest between {low:.2g} and {high:.2g}); plot: {finding.plot}")
    return finding


def _sweep(model: keras.Model, classifier, x: np.ndarray, y: np.ndarray, s: Settings, min_lr: float,
           max_lr: float, steps: int, phase: str) -> tuple[list[float], list[float]]:
    optimizer = keras.optimizers.Adam(min_lr)
    model.compile(optimizer=optimizer, loss=classifier.loss())
    rng = np.random.default_rng(s.data.seed)
    order, position = rng.permutation(len(x)), 0
    batch = min(s.recipe.batch_size, len(x))
    rates, losses, best = [], [], np.inf
    with console.progress(f"LR range test ({phase})", total=steps) as advance:
        for step in range(steps):
            rate = min_lr * (max_lr / min_lr) ** (step / max(1, steps - 1))
            optimizer.learning_rate.assign(rate)
            if position + batch > len(order):
                order, position = rng.permutation(len(x)), 0
            rows = order[position:position + batch]
            position += batch
            loss = float(model.train_on_batch(x[rows], y[rows]))
            rates.append(rate)
            losses.append(loss)
            advance()
            best = min(best, loss)
            if not np.isfinite(loss) or (step > 10 and loss > 4 * best):
                break
    return rates, losses


def _suggest(rates: list[float], losses: list[float], beta: float = 0.9) -> LrFinding:
    finite = [i for i, v in enumerate(losses) if np.isfinite(v)]
    rates, losses = [rates[i] for i in finite], [losses[i] for i in finite]
    if len(rates) < 8:
        raise UserError("The loss diverged almost at once; lower --min-lr.")
    average, smoothed = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** (i + 1)))
    slope = np.gradient(np.array(smoothed), np.log10(rates))
    skip = max(1, len(rates) // 10)  # the first steps only warm the average up
    window = slope[skip:-1] if len(slope) > skip + 2 else slope
    steepest = skip + int(np.argmin(window))
    if slope[steepest] >= 0:
        raise UserError("The loss never fell during the range test; widen --min-lr/--max-lr or check the data.")
    low = high = steepest
    while low > 0 and slope[low - 1] <= 0.5 * slope[steepest]:
        low -= 1
    while high < len(slope) - 1 and slope[high + 1] <= 0.5 * slope[steepest]:
        high += 1
    return LrFinding(rates, losses, smoothed, rates[steepest], (rates[low], rates[high]), "")


def _plot(finding: LrFinding, phase: str, path: Path) -> None:
    from inceptune.evaluation.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(finding.learning_rates, finding.losses, color="0.75", linewidth=1, label="loss per batch")
    ax.plot(finding.learning_rates, finding.smoothed, color="tab:blue", linewidth=2, label="smoothed")
    ax.axvspan(*finding.fastest_range, color="tab:green", alpha=0.15, label="loss falls fastest")
    ax.axvline(finding.suggestion, color="tab:red", linestyle="--", label=f"suggestion {finding.suggestion:.2g}")
    ax.set_xscale("log")
    top = np.percentile(finding.smoothed, 95)
    ax.set_ylim(min(finding.smoothed) * 0.9, max(top, finding.smoothed[0]) * 1.1)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"Learning-rate range test: {phase}")
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)
