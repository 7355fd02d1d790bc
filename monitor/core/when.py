"""Times given by a person (API query, CLI option): ISO-8601 with a zone, or relative to now. Pure.

* ``1h``, ``30m``, ``2d``, ``1w``, ``90s`` (also ``1.5h``): that long before ``now``;
* ``2026-01-01T00:00:00Z`` / ``…+01:00``: as given, in UTC. A ``+`` that reached us as a space (an unencoded
  ``+00:00`` in a URL query is decoded as `` 00:00``) is read as the ``+`` it was.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from monitor.core.contract import parse_time

_RELATIVE = re.compile(r"(\d{1,9}(?:\.\d{1,6})?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPACE_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
HELP = "ISO-8601 with a zone (2026-01-01T00:00:00Z) or a time before now (90s, 30m, 1h, 2d, 1w)"


def parse_when(text: str, now: datetime | None = None) -> datetime | None:
    """The UTC time ``text`` names, None when it names none (the caller says what is accepted: ``HELP``)."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        now = datetime.now(timezone.utc) if now is None else now
        try:
            return now - timedelta(seconds=float(relative.group(1)) * _UNITS[relative.group(2)])
        except OverflowError:
            return None
    return parse_time(_SPACE_OFFSET.sub(r"\1+\2", value))
