"""Settings: one dataclass tree holding every default (schema.py), what each value may be (spec.py),
and how a call's keywords, flags and config file become checked Settings (resolve.py)."""

from inceptune.settings.resolve import COMMANDS, command_settings, documented, read_config_file, resolve, uses
from inceptune.settings.schema import BASIC, DEFAULTS, TABLE, Settings
from inceptune.settings.spec import SettingError, Spec

__all__ = ["BASIC", "COMMANDS", "DEFAULTS", "TABLE", "SettingError", "Settings", "Spec", "command_settings", "documented",
           "read_config_file", "resolve", "uses"]
