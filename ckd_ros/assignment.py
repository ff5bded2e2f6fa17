"""``NAME<sep>VALUE`` from a command line, the value typed as YAML, shared by every layer's command line.

Training overrides use ``key=value``; the demo's node parameters use ros2's ``name:=value``. Both read the
value as ``ros2 run -p`` does (YAML: ``5``, ``0.5``, ``true``, ``[1, 2]``, text), so one rule types both.
"""
from __future__ import annotations

from typing import Any

import yaml


def parse_assignment(text: str, separator: str = "=") -> tuple[str, Any]:
    """``text`` split at the first ``separator`` -> (stripped name, value read as YAML); ValueError says why not."""
    name, sep, value = text.partition(separator)
    if not sep or not name.strip():
        raise ValueError(f"{text!r} must look like NAME{separator}VALUE")
    try:
        return name.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"{text!r}: the value is not YAML ({exc})") from None
