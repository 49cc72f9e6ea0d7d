"""Bar intervals written as `30s`, `1m`, `15m`, `1h`, `1d`, `1w`."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL = re.compile(r"^(\d+)([smhdw])$")


def interval_seconds(interval: str) -> int:
    """Return the length of `interval` in seconds.

    Raises:
        ValueError: the text is not a positive count followed by one of s, m, h, d, w.
    """
    match = _INTERVAL.match(interval.strip()) if isinstance(interval, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"interval {interval!r} not understood; expected a positive count and a unit "
            "s, m, h, d or w, such as '1m', '15m', '1h', '1d'"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
