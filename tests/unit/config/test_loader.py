"""YAML loading: safe loader, file/line/field errors, defaults, size limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import MAX_CONFIG_BYTES, ConfigError, load_config, load_config_text

ROOT = Path(__file__).resolve().parents[3]

GOOD = """\
defaults:
  detect_fps: 4
  timezone: Europe/London
cameras:
  - id: hall
    source: {url: videos/hall.mp4}
    zones:
      - id: z
        polygon: [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]
  - id: gate
    detect_fps: 2
    source: {url: "rtsp://cam.local/s1"}
"""


def test_defaults_merged_and_paths_resolved(tmp_path: Path) -> None:
    cfg = load_config_text(GOOD, base_dir=tmp_path)
    hall, gate = cfg.cameras
    assert hall.detect_fps == 4 and gate.detect_fps == 2
    assert hall.timezone == gate.timezone == "Europe/London"
    assert hall.source.url == str(tmp_path / "videos/hall.mp4")
    assert gate.source.url == "rtsp://cam.local/s1"
    assert cfg.data_dir == str(tmp_path / "var")
    assert cfg.detector.models_dir == str(tmp_path / "models")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("detect_fps: 2", "detect_fps: 0"), "<f>:11: cameras.1.detect_fps:"),
        (GOOD.replace("    detect_fps: 2\n", "    detect_fps: 2\n    colour: red\n"),
         "<f>:12: cameras.1.colour: unknown field"),
        (GOOD.replace("[0.5, 0.9]]", "[1.5, 0.9]]"), "<f>:9: cameras.0.zones.0.polygon"),
        (GOOD.replace("  detect_fps: 4", "  detect_fps: -1"), "<f>:2: cameras.0.detect_fps"),
        ("cameras: [\n  {id: a,\n", "<f>:3: invalid YAML"),
        ("- just\n- a list\n", "<f>:1: top level must be a mapping"),
        ("cameras: []\n", "<f>:1: cameras:"),
    ],
    ids=["bound", "unknown-key", "polygon", "from-defaults", "syntax", "not-mapping", "empty"],
)  # fmt: skip
def test_error_names_file_line_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config_text(text, file="<f>")
    assert expected in str(err.value), str(err.value)


def test_every_error_is_reported() -> None:
    bad = GOOD.replace("detect_fps: 2", "detect_fps: 0").replace(
        "timezone: Europe/London", "timezone: Nowhere/Land"
    )
    with pytest.raises(ConfigError) as err:
        load_config_text(bad, file="<f>")
    fields = {i.field for i in err.value.issues}
    assert {
        "cameras.0.timezone",
        "cameras.1.timezone",
        "cameras.1.detect_fps",
    } <= fields


def test_python_tag_refused_nothing_executed(tmp_path: Path) -> None:
    """Regression: a YAML tag must never run code (unsafe loader)."""
    marker = tmp_path / "pwned"
    text = f"cameras: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config_text(text, file="<f>")
    assert not marker.exists()


def test_alias_bomb_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    lines.append("cameras: *a8")
    with pytest.raises(ConfigError, match="too many YAML nodes"):
        load_config_text("\n".join(lines) + "\n", file="<f>")


def test_huge_file_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (10 * 1024 * 1024) + "\n" + GOOD)
    with pytest.raises(ConfigError, match=f"limit {MAX_CONFIG_BYTES}"):
        load_config(big)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/hallmonitor.yaml")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_check_config_every_shipped_file_passes() -> None:
    files = sorted(str(p) for p in (ROOT / "config").glob("*.yaml"))
    assert files, "no config files shipped"
    res = _cli("check-config", *files)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(": OK") == len(files)


def test_check_config_exit_2_with_all_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        GOOD.replace("detect_fps: 2", "detect_fps: 0").replace("id: z", "id: ''")
    )
    res = _cli("check-config", str(bad))
    assert res.returncode == 2
    assert f"{bad}:11: cameras.1.detect_fps:" in res.stderr
    assert f"{bad}:8: cameras.0.zones.0.id:" in res.stderr
