"""What a setting may hold: its kind, its allowed values, its flag and its help, in one `Spec`.

Settings are dataclass fields made with `setting(default, help, ...)`, which
puts a `Spec` in the field's metadata. The Spec checks a value from Python or
from a config file (`check`), and parses the text of a command-line flag
(`parse`); a bad value is a `SettingError` that names the setting, its flag,
what was expected and what arrived, the way scikit-learn's parameter
validation words it.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import MISSING, dataclass, field

from inceptune.errors import UserError

KINDS = ("int", "float", "str", "bool", "path", "ints", "strs")
PRETRAINED, SCRATCH = "pretrained", "scratch"  # the two recipes of `train`


class SettingError(UserError, ValueError):
    """A setting with a value of the wrong type, outside its range, or not used by the chosen recipe."""


@dataclass(frozen=True)
class Spec:
    kind: str  # one of KINDS; "ints" and "strs" are lists
    help: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # (low, ...] instead of [low, ...]
    high_open: bool = False
    optional: bool = False  # None is allowed (and means "not set")
    flag: str | None = None  # the command-line flag without dashes (default: the name with dashes)
    positional: bool = False  # a command-line argument (DATA), not a flag
    short: str | None = None
    recipes: tuple[str, ...] = (PRETRAINED, SCRATCH)  # which of train's recipes use it
    env: str | None = None  # an environment variable that, when set, replaces the default (a file or flag wins)

    def cli_flag(self, name: str) -> str:
        """How the command line spells it: --flag, or NAME for an argument."""
        return name.upper() if self.positional else "--" + (self.flag or name.replace("_", "-"))

    # --- what is expected, in words
    def expected(self) -> str:
        element = {"int": "an int", "float": "a float", "str": "a str", "bool": "a bool (true or false)",
                   "path": "a path (str or os.PathLike)", "ints": "a list of ints", "strs": "a list of str"}[self.kind]
        if self.choices:
            element = f"{element.split(' (')[0]} among {{{', '.join(repr(c) for c in self.choices)}}}"
        elif self.low is not None or self.high is not None:
            low = "-inf" if self.low is None else f"{self.low:g}"
            high = "inf" if self.high is None else f"{self.high:g}"
            element += f" in the range {'(' if self.low_open or self.low is None else '['}{low}, " \
                       f"{high}{')' if self.high_open or self.high is None else ']'}"
        return element + (" or None" if self.optional else "")

    def error(self, name: str, value, expected: str | None = None) -> SettingError:
        return SettingError(f"The '{name}' setting ({self.cli_flag(name)}) must be {expected or self.expected()}; "
                            f"got {value!r} instead.")

    # --- values from Python and config files
    def check(self, name: str, value):
        """`value` in its canonical form (float for float settings, tuple for lists), or a SettingError."""
        if value is None:
            if self.optional:
                return None
            raise self.error(name, value)
        if self.kind in ("ints", "strs"):
            if not isinstance(value, (list, tuple)):
                raise self.error(name, value)
            return tuple(self._scalar(name, v, value, self.kind[:-1]) for v in value)
        return self._scalar(name, value, value, self.kind)

    def _scalar(self, name: str, value, whole, kind: str):
        if kind == "int":
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            value = int(value) if ok else value
        elif kind == "float":
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            value = float(value) if ok else value
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "path":
            ok = isinstance(value, (str, os.PathLike)) and os.fspath(value) != ""
            value = os.fspath(value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok or (self.choices and value not in self.choices) or not self._in_range(value):
            raise self.error(name, whole)
        return value

    def _in_range(self, value) -> bool:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    # --- text from the command line
    def parse(self, name: str, text):
        """A flag's text (a list of texts for list settings) as a checked value."""
        if self.kind == "bool" or text is None:
            return self.check(name, text)
        if self.kind in ("ints", "strs"):
            return self.check(name, [self._from_text(name, t, self.kind[:-1]) for t in text])
        return self.check(name, self._from_text(name, text, self.kind))

    def _from_text(self, name: str, text: str, kind: str):
        if self.optional and text.lower() == "none" and kind != "path":
            return None
        try:
            return int(text) if kind == "int" else float(text) if kind == "float" else text
        except ValueError:
            raise self.error(name, text) from None


def setting(default, help: str, kind: str | None = None, **rules):
    """A dataclass field holding a setting: its default, and its Spec in the metadata."""
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(default)]
    assert kind in KINDS, kind
    spec = Spec(kind, help, **rules)
    return field(default=default if default is not None or spec.optional else MISSING, metadata={"spec": spec})
