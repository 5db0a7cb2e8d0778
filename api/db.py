"""Engine creation (SQLite pragmas) and programmatic Alembic migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

__all__ = ["make_engine", "redact_db_url", "upgrade_head"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def redact_db_url(url: str | sa.URL) -> str:
    """The URL with its password replaced by ``***`` (safe for logs)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown not at all
        return "<unparsable database url>"


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> sa.Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://...``).
        busy_timeout_ms: How long SQLite waits for a lock before failing.
    """
    u = sa.make_url(url)
    kw: dict[str, Any] = {"pool_pre_ping": True}
    if u.get_backend_name() == "sqlite":
        # The consumer thread and the API's worker threads share the engine.
        kw["connect_args"] = {
            "check_same_thread": False,
            "timeout": busy_timeout_ms / 1000,
        }
        engine = sa.create_engine(u, **kw)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            # Autocommit at the driver level: we emit BEGIN ourselves (below), and
            # journal_mode cannot change inside a transaction.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL: durable across process crashes (not power loss), fast.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # Writers take the lock up front (BEGIN IMMEDIATE) so a read-then-write
            # transaction waits for busy_timeout instead of failing half way.
            if conn.get_execution_options().get("hm_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    kw["connect_args"] = {"connect_timeout": 5}
    return sa.create_engine(u, **kw)


def upgrade_head(engine: sa.Engine) -> None:
    """Run ``alembic upgrade head`` on ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    log.info("database at %s migrated to head", redact_db_url(engine.url))
