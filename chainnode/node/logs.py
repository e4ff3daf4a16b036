"""Structured logs: one line per event on stderr, as text or as JSON lines.

The node writes to stderr only and never to a file of its own: under systemd, journald
takes stderr (and rotates it), so there is no file to reopen and nothing for SIGHUP to do
(docs/operations.md, "Running as a service"). With `format = "json"` everything the
process says on stderr is one JSON object per line, so that `journalctl -o cat | jq`
never meets a stray line: Python warnings and exceptions that escape a thread are routed
through logging too, instead of being printed as bare text.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

# The format setup_logging installed last ("text" before that): how `chainnode start`
# prints a refusal, so that a JSON log stays JSON to its last line.
_active_format = "text"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ms), level, logger, msg, and exc with the
    traceback when there is one (a JSON string: the record stays one line)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Send every log record to stderr as `fmt` ("text" or "json"), at `level` and above.
    Calling it again replaces the previous setup (`chainnode start` sets up logging from its
    flags first, then again once node.toml is read)."""
    global _active_format
    if level not in LEVELS or fmt not in FORMATS:
        raise ValueError(f"log level must be one of {LEVELS} and format one of {FORMATS}; got {level!r}, {fmt!r}")
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
    _active_format = fmt
    # hypercorn is chatty at info; its warnings still show.
    for noisy in ("multiaddr", "hypercorn", "chainnode.rpc.http"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # py-libp2p turns its own logger off unless LIBP2P_DEBUG is set, so its errors (one per
    # failed dial) reach logging's last-resort handler as bare lines. chainnode.network
    # already logs each of those events once, with context; LIBP2P_DEBUG still works.
    libp2p = logging.getLogger("libp2p")
    if not libp2p.handlers:
        libp2p.addHandler(logging.NullHandler())
    # warnings.warn() prints to stderr by itself; as records they take the chosen format.
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception


def active_format() -> str:
    """The format of the last setup_logging ("text" if none yet)."""
    return _active_format


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    # A thread that dies of an exception would print its traceback as bare lines on stderr.
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("chainnode").error("thread %s died of an unexpected error (a bug)", name,
                                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
