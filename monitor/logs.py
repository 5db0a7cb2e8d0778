"""Logging setup shared by the main process and every camera worker.

Redaction happens twice on purpose: a log-record factory redacts each record when it is
created (so handlers added later, e.g. by a test harness or a library, never see a
credential) and a :class:`~monitor.secrets.RedactingFilter` sits on every root handler
(records built by hand or by foreign factories). Both are idempotent and cheap: records
below the logger level are never created.
"""

from __future__ import annotations

import json as _json
import logging
import sys
import time
from typing import Any

from monitor.secrets import RedactingFilter, redact_record

__all__ = ["JsonFormatter", "setup_logging"]

_FORMAT = "%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s"
_installed_factory = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``ts``, ``level``, ``logger``, ``process``, ``msg``)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return _json.dumps(out, ensure_ascii=False)


def _install_factory() -> None:
    global _installed_factory
    if _installed_factory:
        return
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed_factory = True


def setup_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Configure the root logger: one stderr handler, redaction everywhere.

    Safe to call more than once and in child processes (spawned workers call it
    first thing): it replaces the handler it installed before and leaves other
    handlers in place, adding the redacting filter to them.

    Args:
        level: Root level name (``DEBUG``, ``INFO`` …); unknown names raise
            ValueError naming the value.
        json: One JSON object per line instead of plain text.
    """
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    _install_factory()
    root = logging.getLogger()
    root.setLevel(lvl)
    for h in list(root.handlers):
        if getattr(h, "_hm_handler", False):
            root.removeHandler(h)
            h.close()
    handler = logging.StreamHandler(sys.stderr)
    handler._hm_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(_FORMAT))
    root.addHandler(handler)
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
    logging.captureWarnings(True)
