"""The generated config reference in docs/ matches the schema."""

from pathlib import Path

from config.reference import render_reference

ROOT = Path(__file__).resolve().parents[3]


def test_docs_config_reference_is_current() -> None:
    """Regression guard: docs/config.md must be regenerated when the schema changes
    (`hallmonitor config-reference > docs/config.md`)."""
    text = render_reference()
    assert "## `cameras` — CameraConfig" in text
    assert (ROOT / "docs" / "config.md").read_text() == text
