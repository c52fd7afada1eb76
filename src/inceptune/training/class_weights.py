"""`--class-weight`: how much each class's examples count in the loss."""

from __future__ import annotations

import numpy as np

from inceptune.data.dataset import Dataset
from inceptune.errors import UserError


def class_weights(spec: str | None, dataset: Dataset) -> dict[int, float] | None:
    """auto (inverse frequency, scikit-learn's 'balanced') or NAME=WEIGHT pairs, by class index; None for none.

    The syntax was checked with the other settings; here the names meet the dataset's classes.
    """
    if not spec:
        return None
    if dataset.multilabel:
        raise UserError("--class-weight is for single-label tasks; a multi-label task weighs each label's "
                        "yes/no answer equally.")
    classes = dataset.classes
    if spec == "auto":
        from sklearn.utils.class_weight import compute_class_weight

        y = np.array([dataset.label_index(r) for r in dataset.split("train")])
        present = np.unique(y)
        found = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y).tolist()))
        return {i: round(found.get(i, 1.0), 6) for i in range(len(classes))}
    weights = {i: 1.0 for i in range(len(classes))}
    for item in spec.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in classes:
            raise UserError(f"--class-weight names '{name.strip()}', which is not a class ({', '.join(classes)}).")
        weights[classes.index(name.strip())] = float(value)
    return weights
