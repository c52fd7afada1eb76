"""What the recipe search varies, and in which order the quick search tries it (no Keras, no Optuna).

A candidate is a dict of recipe settings by name (feature_block, pooling,
head, l2, class_weight, and the dense head's hidden units, dropout, learning
rate, epochs, label smoothing, weight decay). Settings a user gave
explicitly are never varied.

The quick search is a fixed, deterministic order cut by a time budget:
    1. every single-block source with the current head (average pooling
       first, deepest block first: the classic mixed10 average comes first,
       so the search's first score is the plain logistic-regression baseline);
    2. the best two and the best three blocks side by side, with the best
       source's pooling;
    3. the L2 penalty of the linear head on the best source;
    4. balanced class weights when the classes are imbalanced.
"""

from __future__ import annotations

from typing import Iterator

from itertools import combinations

from inceptune.vocabulary.sources import MAX_BLOCKS, SOURCE_BLOCKS, joined

SEARCHED = ("feature_block", "pooling", "head", "l2", "class_weight", "head_units", "dropout", "learning_rate",
            "epochs", "label_smoothing", "weight_decay")
QUICK_POOLINGS = ("avg", "avgmax", "max")
QUICK_L2 = (0.1, 10.0, 0.01, 100.0)
IMBALANCE = 1.5  # largest over smallest class: balanced class weights are worth a try
DENSE_UNITS = (0, 256, 512, 1024)


def quick_sources(fixed: dict) -> Iterator[dict]:
    """Stage 1: every source (block x pooling) not ruled out by a fixed setting, in the order tried."""
    for pooling in QUICK_POOLINGS:
        for block in reversed(SOURCE_BLOCKS):
            candidate = {"feature_block": block, "pooling": pooling}
            if all(fixed.get(k, v) == v for k, v in candidate.items()):
                yield candidate


def quick_concatenations(ranked_blocks: list[str], fixed: dict) -> Iterator[dict]:
    """Stage 2: the best two, then the best three single blocks side by side (`ranked_blocks`: best first)."""
    if "feature_block" in fixed:
        return
    for n in range(2, MAX_BLOCKS + 1):
        if len(ranked_blocks) >= n:
            yield {"feature_block": joined(ranked_blocks[:n])}


# Every source block, and every pair and triple of them: what the Optuna study chooses from.
BLOCK_CHOICES = tuple(joined(c) for n in range(1, MAX_BLOCKS + 1) for c in combinations(SOURCE_BLOCKS, n))


def quick_refinements(best: dict, fixed: dict, imbalanced: bool) -> Iterator[dict]:
    """Stages 2 and 3: changes to the best candidate so far."""
    if best["head"] == "linear" and "l2" not in fixed:
        for l2 in QUICK_L2:
            yield {"l2": l2}
    if imbalanced and "class_weight" not in fixed and best.get("class_weight") is None:
        yield {"class_weight": "auto"}


def suggest(trial, fixed: dict) -> dict:
    """An Optuna trial's candidate: the full space, less what is fixed."""
    def pick(name, suggest_fn):
        return fixed[name] if name in fixed else suggest_fn()

    c = {"feature_block": pick("feature_block", lambda: trial.suggest_categorical("feature_block", BLOCK_CHOICES)),
         "pooling": pick("pooling", lambda: trial.suggest_categorical("pooling", ("avg", "max", "avgmax"))),
         "head": pick("head", lambda: trial.suggest_categorical("head", ("linear", "dense"))),
         "class_weight": pick("class_weight", lambda: trial.suggest_categorical("class_weight", ("none", "auto")))}
    if c["class_weight"] == "none":
        c["class_weight"] = None
    if c["head"] == "linear":
        c["l2"] = pick("l2", lambda: trial.suggest_float("l2", 1e-3, 1e3, log=True))
    else:
        units = pick("head_units", lambda: (trial.suggest_categorical("hidden_units", DENSE_UNITS),))
        c["head_units"] = tuple(u for u in units if u)
        c["dropout"] = pick("dropout", lambda: trial.suggest_float("dropout", 0.0, 0.6))
        c["learning_rate"] = pick("learning_rate", lambda: trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True))
        c["epochs"] = pick("epochs", lambda: trial.suggest_int("epochs", 5, 60))
        c["label_smoothing"] = pick("label_smoothing", lambda: trial.suggest_float("label_smoothing", 0.0, 0.2))
        c["weight_decay"] = pick("weight_decay", lambda: trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True))
    return c


def baseline_candidate() -> dict:
    """The plain logistic regression on the classic features: what every search starts from."""
    return {"feature_block": "mixed10", "pooling": "avg", "head": "linear", "l2": 1.0, "class_weight": None}
