"""Configuration: the file format, its schema and its checks. Sans-IO apart from reading the file.

``load_config(path)`` returns a checked, normalized ``Config`` or raises ``ConfigError`` whose
message names the file, the place in it and what was expected.
"""

from .loader import ConfigError, load_config, load_config_bytes, read_config_file
from .schema import Config, Keepalive, Limits, Match, Route, Target, Timeouts, Upstream

__all__ = [
    "Config",
    "ConfigError",
    "Keepalive",
    "Limits",
    "Match",
    "Route",
    "Target",
    "Timeouts",
    "Upstream",
    "load_config",
    "load_config_bytes",
    "read_config_file",
]
