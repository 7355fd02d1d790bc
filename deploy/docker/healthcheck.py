#!/usr/bin/env python3
"""Container health check: GET $MONITOR_HEALTHCHECK_URL (or argv[1]); healthy on HTTP 200.

Used by the image's HEALTHCHECK for every role; an empty URL (one-shot jobs, the scheduler) counts as
healthy. Standard library only, so it works in the slim image without curl.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MONITOR_HEALTHCHECK_URL", "")
    if not url:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - local URL from the operator
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
