"""Camera credentials: resolved at connect time, redacted everywhere else.

Credentials never live in the config: a camera names environment variables or a key
in the secrets file (YAML ``{name: {username, password}}``) and
:func:`build_source_url` injects them, percent-encoded, into the URL just before
OpenCV opens it. Every value it injects is registered for redaction, and
:func:`redact` additionally strips any ``user:password@`` userinfo from URLs (raw or
percent-encoded) so that a credential that was never registered (a URL typed into a
log message by a library) does not leak either.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from config.schema import SourceConfig

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "SecretError",
    "build_source_url",
    "redact",
    "register_secret",
]

log = logging.getLogger(__name__)

REDACTED = "***"

# Values shorter than this are not registered: redacting every "ab" in every log
# line would destroy the logs while protecting nothing (such a password is no secret).
_MIN_SECRET_LEN = 3

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None

# scheme://userinfo@ — userinfo is everything up to the LAST '@' before the path, so
# usernames holding '@' or '.' (``john.doe@corp:pw@cam``) are covered in full.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s?#\"'<>]*)@")
# The same URL percent-encoded once (``rtsp%3A%2F%2Fuser%3Apw%40host``): userinfo
# runs to the last ``%40`` before the next encoded slash.
_ENC_USERINFO = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]*%3A%2F%2F)((?:(?!%2F)[^\s/?#\"'<>])*)%40"
)


class SecretError(ValueError):
    """A camera credential could not be resolved (names where, never the value)."""


def _forms(value: str) -> set[str]:
    """The raw value and the encodings it may show up in."""
    once = quote(value, safe="")
    return {
        value,
        once,
        quote(value),  # '/' kept: how path-ish values are often encoded
        quote_plus(value),
        quote(once, safe=""),  # double-encoded (a URL inside a query string)
        once.lower(),  # %xx escapes in lower case
    }


def register_secret(*values: str) -> None:
    """Add values (and their percent-encoded forms) to the process-wide redaction set.

    Args:
        *values: Secret strings; empty or very short values are ignored.
    """
    global _secret_re
    with _lock:
        before = len(_secrets)
        for v in values:
            if v and len(v) >= _MIN_SECRET_LEN:
                _secrets.update(f for f in _forms(v) if len(f) >= _MIN_SECRET_LEN)
        if len(_secrets) != before:
            # Longest first so that an encoded form is not half-replaced by a
            # shorter overlapping one.
            alts = sorted(_secrets, key=len, reverse=True)
            _secret_re = re.compile("|".join(re.escape(a) for a in alts))


def redact(text: str) -> str:
    """Remove registered secrets and any URL userinfo from ``text``.

    Args:
        text: Any string (log line, exception text, heartbeat message).

    Returns:
        ``text`` with userinfo replaced by ``***@`` and registered secrets by ``***``.
    """
    if not text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _ENC_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}%40", text)
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, exception and stack text in place.

    Installed on handlers (and applied at record creation by
    :func:`monitor.logs.setup_logging`) so every output sees the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_fmt = logging.Formatter()


def _redact_arg(value: object) -> object:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = value if isinstance(value, str) else str(value)
    red = redact(text)
    return red if red != text else value


def redact_record(record: logging.LogRecord) -> None:
    """Redact ``record`` in place (idempotent)."""
    if getattr(record, "_hm_redacted", False):
        return
    # Keep msg/args apart (formatters such as uvicorn's access log unpack args);
    # only arguments whose text holds a secret are replaced by their redacted text.
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    else:
        text = str(record.msg)
        if redact(text) != text:
            record.msg = redact(text)
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_redact_arg(a) for a in args)
    elif isinstance(args, dict):
        record.args = {k: _redact_arg(v) for k, v in args.items()}
    if record.exc_info and not record.exc_text:
        record.exc_text = _fmt.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._hm_redacted = True  # type: ignore[attr-defined]


def _load_secrets_file(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SecretError(f"secrets file {path} does not exist") from exc
    except OSError as exc:
        raise SecretError(
            f"secrets file {path} cannot be read: {exc.strerror}"
        ) from exc
    except yaml.YAMLError as exc:
        # The YAML error quotes the offending line, which may hold a password.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SecretError(f"secrets file {path} is not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SecretError(
            f"secrets file {path} must map secret names to {{username, password}}"
        )
    return data


def _resolve(source: SourceConfig, secrets_file: str | None) -> tuple[str, str]:
    cred = source.credentials
    assert cred is not None
    if cred.secret is not None:
        if not secrets_file:
            raise SecretError(
                f"camera credentials refer to secret {cred.secret!r} but no "
                "secrets_file is configured"
            )
        data = _load_secrets_file(secrets_file)
        entry = data.get(cred.secret)
        if entry is None:
            raise SecretError(
                f"secret {cred.secret!r} is missing from secrets file {secrets_file}"
            )
        if not isinstance(entry, dict):
            raise SecretError(
                f"secret {cred.secret!r} in {secrets_file} must be a mapping "
                "with username and password"
            )
        missing = [
            k for k in ("username", "password") if not isinstance(entry.get(k), str)
        ]
        if missing:
            raise SecretError(
                f"secret {cred.secret!r} in {secrets_file} lacks a string "
                f"{' and '.join(missing)}"
            )
        return entry["username"], entry["password"]
    user = pw = ""
    for attr in ("username_env", "password_env"):
        name = getattr(cred, attr)
        if name is None:
            continue
        value = os.environ.get(name)
        if value is None:
            raise SecretError(
                f"environment variable {name} ({attr.removesuffix('_env')} of the "
                "camera) is not set"
            )
        if attr == "username_env":
            user = value
        else:
            pw = value
    return user, pw


def build_source_url(source: SourceConfig, secrets_file: str | None) -> str:
    """The URL to open, with credentials injected (percent-encoded) when configured.

    Args:
        source: The camera's source config (URL without credentials).
        secrets_file: ``AppConfig.secrets_file`` (YAML), if any.

    Returns:
        ``source.url`` itself when there are no credentials, else the URL with
        ``user:password@`` userinfo. The values are registered for redaction.

    Raises:
        SecretError: A variable, file or key is missing (the message names it, never
            a value), or credentials are configured for a source that is no URL.
    """
    if source.credentials is None:
        return source.url
    parts = urlsplit(source.url)
    if not parts.scheme or not parts.netloc or parts.scheme == "file":
        raise SecretError(
            "credentials are configured for a source that is not a network URL "
            f"({parts.scheme or 'path'})"
        )
    user, pw = _resolve(source, secrets_file)
    register_secret(pw)
    if not user and not pw:
        return source.url
    userinfo = quote(user, safe="")
    if pw:
        userinfo += ":" + quote(pw, safe="")
    # Keep the registered set in step with what the URL actually holds.
    register_secret(userinfo if pw else "")
    netloc = f"{userinfo}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url_without_userinfo, username, password)``, both decoded (or None)."""
    from urllib.parse import unquote

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, pw = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(user), unquote(pw) if sep else None
