"""Credential resolution and redaction (raw, percent-encoded, dotted/@ usernames)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

from config.schema import SourceConfig
from monitor.logs import setup_logging
from monitor.secrets import (
    RedactingFilter,
    SecretError,
    build_source_url,
    redact,
    register_secret,
)

ROOT = Path(__file__).resolve().parents[3]
PW = "Tr0ub4dor&3:/@%"


def _src(**cred) -> SourceConfig:
    return SourceConfig(url="rtsp://10.1.2.3:554/Streaming/101", credentials=cred)


def test_env_credentials_are_percent_encoded(monkeypatch) -> None:
    monkeypatch.setenv("CAM_U", "jane.doe@campus.edu")
    monkeypatch.setenv("CAM_P", PW)
    url = build_source_url(_src(username_env="CAM_U", password_env="CAM_P"), None)
    parts = urlsplit(url)
    assert parts.hostname == "10.1.2.3" and parts.port == 554
    assert parts.path == "/Streaming/101"
    assert unquote(parts.username) == "jane.doe@campus.edu"
    assert unquote(parts.password) == PW
    assert redact(f"x {PW} y") == "x *** y"  # registered on resolution


def test_secrets_file(tmp_path) -> None:
    f = tmp_path / "secrets.yaml"
    f.write_text("gate_cam:\n  username: admin\n  password: 'p4ss word!'\n")
    url = build_source_url(_src(secret="gate_cam"), str(f))
    assert url == "rtsp://admin:p4ss%20word%21@10.1.2.3:554/Streaming/101"


@pytest.mark.parametrize(
    ("setup", "cred", "secrets_file", "expect"),
    [
        ({}, {"username_env": "NOPE_U", "password_env": "NOPE_P"}, None,
         "environment variable NOPE_U"),
        ({"CAM_U": "u"}, {"username_env": "CAM_U", "password_env": "NOPE_P"}, None,
         "environment variable NOPE_P"),
        ({}, {"secret": "gate"}, None, "no secrets_file is configured"),
        ({}, {"secret": "gate"}, "missing.yaml", "does not exist"),
        ({}, {"secret": "other"}, "ok", "secret 'other' is missing"),
        ({}, {"secret": "nopw"}, "ok", "lacks a string password"),
        ({}, {"secret": "gate"}, "bad", "is not valid YAML (line "),
    ],
)  # fmt: skip
def test_missing_credentials_name_where_never_value(
    tmp_path, monkeypatch, setup, cred, secrets_file, expect
) -> None:
    for k, v in setup.items():
        monkeypatch.setenv(k, v)
    if secrets_file == "ok":
        p = tmp_path / "s.yaml"
        p.write_text("gate: {username: a, password: hunter22}\nnopw: {username: a}\n")
        secrets_file = str(p)
    elif secrets_file == "bad":
        p = tmp_path / "s.yaml"
        p.write_text("gate:\n  password: [hunter22\n: :\n")
        secrets_file = str(p)
    elif secrets_file:
        secrets_file = str(tmp_path / secrets_file)
    with pytest.raises(SecretError) as ei:
        build_source_url(_src(**cred), secrets_file)
    assert expect in str(ei.value)
    assert "hunter22" not in str(ei.value)


def test_credentials_on_a_file_source_rejected(monkeypatch) -> None:
    monkeypatch.setenv("CAM_P", "x")
    src = SourceConfig(url="/videos/a.mp4", credentials={"password_env": "CAM_P"})
    with pytest.raises(SecretError, match="not a network URL"):
        build_source_url(src, None)


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("open rtsp://admin:hunter2@10.0.0.5/live failed", "hunter2"),
        ("rtsp://john.doe:pa.ss@cam.local:554/a", "pa.ss"),
        ("rtsp://john.doe@corp.edu:pa55@cam/a", "pa55"),  # raw @ in the username
        ("rtsp://john.doe%40corp.edu:pa%3Ass@cam/a", "pa%3Ass"),  # encoded userinfo
        ("http://u:p4ss@h:8080/mjpg?x=1 and rtsps://v:q8ss@h2/", "p4ss"),
        ("'rtsp://u:p4ss@h/'", "p4ss"),
        # the whole URL percent-encoded once (a query parameter, a JSON log)
        ("next=rtsp%3A%2F%2Fjohn.doe%40corp%3Apa55%40cam%2Fa", "pa55"),
    ],
)
def test_redact_url_userinfo(text: str, leak: str) -> None:
    out = redact(text)
    assert leak not in out
    assert "***" in out
    assert "cam" in out or "10.0.0.5" in out or "h" in out  # host kept


def test_redact_keeps_normal_text() -> None:
    text = "camera gate: offline (connection to 10.0.0.5:554 refused) a@b.c"
    assert redact(text) == text


def test_registered_secret_all_forms() -> None:
    register_secret("s3cr#t pass/")
    for form in ["s3cr#t pass/", quote("s3cr#t pass/", safe=""),
                 quote("s3cr#t pass/"), quote(quote("s3cr#t pass/", safe=""), safe="")]:  # fmt: skip
        assert form not in redact(f"value={form}!"), form
    register_secret("ab")  # too short to redact meaningfully: ignored
    assert redact("tab cab") == "tab cab"


def test_filter_redacts_args_and_exceptions() -> None:
    register_secret("zebra-horse-91")
    log = logging.getLogger("test.secrets.filter")
    log.propagate = False
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.addFilter(RedactingFilter())
    log.addHandler(h)
    try:
        log.error("open %s failed", "rtsp://u:zebra-horse-91@h/a")
        try:
            raise OSError("cannot reach rtsp://u:zebra-horse-91@h/a")
        except OSError:
            log.exception("with traceback")
        log.warning("dict arg %(url)s", {"url": "zebra-horse-91"})
    finally:
        log.removeHandler(h)
    out = buf.getvalue()
    assert "zebra-horse-91" not in out
    assert "open rtsp://***@h/a failed" in out
    assert "OSError: cannot reach rtsp://***@h/a" in out
    assert "dict arg ***" in out


def test_setup_logging_in_a_child_process() -> None:
    """A fresh interpreter (like a spawned worker): nothing leaks to stderr."""
    code = (
        "import logging, sys\n"
        "from monitor.logs import setup_logging\n"
        "setup_logging('INFO', json=True)\n"
        "log = logging.getLogger('w')\n"
        "log.info('url %s', 'rtsp://cam.ops:S3cr%40t@10.0.0.1/x')\n"
        "try:\n"
        "    raise RuntimeError('rtsp%3A%2F%2Fcam.ops%3AS3cr%2540t%4010.0.0.1')\n"
        "except RuntimeError:\n"
        "    log.exception('boom')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "S3cr" not in r.stderr
    assert '"msg": "url rtsp://***@10.0.0.1/x"' in r.stderr
    assert "RuntimeError" in r.stderr


def test_setup_logging_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging("LOUD")


def test_filter_keeps_args_structure_for_formatters() -> None:
    """Regression: flattening record.args broke formatters that unpack them
    (uvicorn's access log expects a 5-tuple)."""
    register_secret("llama-quartz-77")
    rec = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/x?k=llama-quartz-77", "1.1", 200), None,
    )  # fmt: skip
    RedactingFilter().filter(rec)
    assert isinstance(rec.args, tuple) and len(rec.args) == 5
    assert rec.args[4] == 200
    assert rec.getMessage() == '127.0.0.1:5 - "GET /x?k=*** HTTP/1.1" 200'


def test_filter_redacts_non_string_args() -> None:
    class Url:
        def __str__(self) -> str:
            return "rtsp://u:walrus-88@h/a"

    rec = logging.LogRecord("t", logging.INFO, __file__, 1, "at %s", (Url(),), None)
    RedactingFilter().filter(rec)
    assert rec.getMessage() == "at rtsp://***@h/a"
