"""Augmentation policies by name (`--augment`), and `--aug KEY=VALUE` overrides: plain data, no Keras.

    rotation    degrees, either way           shift       fraction of width and height
    shear       shear intensity (RandomShear)  zoom        fraction in or out
    flip        horizontal | vertical | horizontal_and_vertical | none
    brightness  fraction of the 0-255 range    contrast    factor

training/augment.py turns the resolved parameters into Keras layers.
"""

from __future__ import annotations

import hashlib
import json

from inceptune.errors import UserError

POLICIES: dict[str, dict] = {
    "none": {},
    "light": {"rotation": 10, "zoom": 0.1, "flip": "horizontal"},
    # The seeds' ImageDataGenerator(rotation_range=20, width/height_shift_range=0.2, shear_range,
    # zoom_range=0.2, horizontal_flip=True), plus mild photometric changes.
    "default": {"rotation": 20, "shift": 0.2, "shear": 0.1, "zoom": 0.2, "flip": "horizontal",
                "brightness": 0.1, "contrast": 0.1},
    "strong": {"rotation": 30, "shift": 0.25, "shear": 0.2, "zoom": 0.3, "flip": "horizontal",
               "brightness": 0.2, "contrast": 0.3},
}
FLIPS = ("horizontal", "vertical", "horizontal_and_vertical", "none")


def resolve_policy(name: str, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The parameters of policy `name` with `KEY=VALUE` overrides applied."""
    if name not in POLICIES:
        raise UserError(f"--augment must be one of {', '.join(POLICIES)}, got {name}.")
    params = dict(POLICIES[name])
    known = ("rotation", "shift", "shear", "zoom", "flip", "brightness", "contrast")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise UserError(f"--aug takes KEY=VALUE with KEY one of {', '.join(known)}, got '{item}'.")
        if key == "flip":
            if value not in FLIPS:
                raise UserError(f"--aug flip= takes one of {', '.join(FLIPS)}, got '{value}'.")
            params[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"--aug {key}= takes a number, got '{value}'.") from None
        if number < 0 or number > (180 if key == "rotation" else 1):
            raise UserError(f"--aug {key}= must be between 0 and {'180' if key == 'rotation' else '1'}, got {value}.")
        params[key] = number
    return {k: v for k, v in params.items() if v not in (0, 0.0, "none")}


def policy_key(params: dict, seed: int) -> str:
    return hashlib.sha256(json.dumps([params, seed], sort_keys=True).encode()).hexdigest()[:12]
