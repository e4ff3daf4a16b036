"""Structured logs: one line per event on stderr, as text or as JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # hypercorn is chatty at info; its warnings still show.
    for noisy in ("multiaddr", "hypercorn", "chainnode.rpc.http"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # py-libp2p turns its own logger off unless LIBP2P_DEBUG is set, so its errors (one per
    # failed dial) reach logging's last-resort handler as bare lines. chainnode.network
    # already logs each of those events once, with context; LIBP2P_DEBUG still works.
    libp2p = logging.getLogger("libp2p")
    if not libp2p.handlers:
        libp2p.addHandler(logging.NullHandler())
