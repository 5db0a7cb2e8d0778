"""`hallmonitor models ...` handlers, driven through argparse as the main CLI does."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from monitor.detector import file_sha256, read_manifest
from monitor.models_cli import register
from tests.unit.monitor.test_detector_formats import build_model, cells, yolov5_rows


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hallmonitor")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", *argv])
    return int(args.func(args))


def _tiny(path: Path) -> Path:
    const = yolov5_rows(3 * cells(64, 64), 80, [(32, 32, 20, 20, 0.9, 0, 0.9)])
    return build_model(path, const)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    f = _tiny(d / "tiny.onnx")
    (d / "manifest.yaml").write_text(
        "# keep me\nschema_version: 1\nmodels:\n"
        f"  tiny:\n    file: tiny.onnx\n    sha256: {file_sha256(f)}\n"
        "    format: yolov5\n    input_size: [64, 64]\n    licence: MIT\n"
        "  gone:\n    file: gone.onnx\n    sha256: '00'\n"
    )
    return d


def test_help_for_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("list", "verify", "import", "export"):
        with pytest.raises(SystemExit) as exit_:
            _run(sub, "--help")
        assert exit_.value.code == 0
        assert "--models-dir" in capsys.readouterr().out


def test_list(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("list", "--models-dir", str(models_dir)) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "yolov5" in out and "64x64" in out and "MIT" in out
    assert "gone" in out and "missing" in out and "present" in out


def test_list_repo_manifest_names_both_shared_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped manifest describes both shared models (files need not exist)."""
    assert _run("list", "--models-dir", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "yolox_nano" in out and "yolov8n_int8" in out


@pytest.mark.parametrize(
    ("names", "rc", "expected"),
    [
        (["tiny"], 0, "tiny: OK"),
        ([], 1, "gone: MISSING"),
        (["nosuch"], 2, "unknown model"),
    ],
)
def test_verify(
    models_dir: Path,
    capsys: pytest.CaptureFixture[str],
    names: list[str],
    rc: int,
    expected: str,
) -> None:
    assert _run("verify", *names, "--models-dir", str(models_dir)) == rc
    captured = capsys.readouterr()
    assert expected in captured.out + captured.err


def test_verify_detects_a_changed_file(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(models_dir / "tiny.onnx", "ab") as f:
        f.write(b"\0")
    assert _run("verify", "tiny", "--models-dir", str(models_dir)) == 1
    assert "tiny: MISMATCH" in capsys.readouterr().out


def test_import_copies_and_records(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tiny(tmp_path / "newmodel.onnx")
    assert _run("import", str(src), "--models-dir", str(models_dir)) == 0
    assert (models_dir / "newmodel.onnx").read_bytes() == src.read_bytes()
    text = (models_dir / "manifest.yaml").read_text()
    assert text.startswith("# keep me")  # comments survive
    entry = read_manifest(models_dir / "manifest.yaml")["newmodel"]
    assert entry["sha256"] == file_sha256(src)
    assert entry["format"] == "yolov5" and entry["input_size"] == [64, 64]
    assert "newmodel" in capsys.readouterr().out
    # the recorded entry verifies
    assert _run("verify", "newmodel", "--models-dir", str(models_dir)) == 0
    # importing the same file again is a no-op success
    assert _run("import", str(src), "--models-dir", str(models_dir)) == 0
    assert read_manifest(models_dir / "manifest.yaml").keys() >= {"tiny", "newmodel"}


def test_import_refuses_different_content_without_force(
    models_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    const = yolov5_rows(3 * cells(64, 64), 80, [(10, 10, 5, 5, 0.9, 2, 0.9)])
    src = build_model(other / "tiny.onnx", const)
    assert _run("import", str(src), "--models-dir", str(models_dir)) == 1
    assert _run("import", str(src), "--models-dir", str(models_dir), "--force") == 0
    assert file_sha256(models_dir / "tiny.onnx") == file_sha256(src)


@pytest.mark.parametrize(
    ("content", "name", "rc", "message"),
    [
        (b"garbage", "bad.onnx", 1, "cannot load ONNX model"),
        (None, "absent.onnx", 2, "is not a file"),
        (b"x", "model.txt", 2, "not an .onnx file"),
    ],
)
def test_import_rejects_bad_files(
    models_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    name: str,
    rc: int,
    message: str,
) -> None:
    src = tmp_path / name
    if content is not None:
        src.write_bytes(content)
    assert _run("import", str(src), "--models-dir", str(models_dir)) == rc
    assert message in capsys.readouterr().err
    assert not (models_dir / name).exists()


def test_import_refuses_unexpected_output_shape(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = build_model(tmp_path / "odd.onnx", np.zeros((7, 13), np.float32))
    assert _run("import", str(src), "--models-dir", str(models_dir)) == 1
    assert "unknown model format" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("ultralytics") is not None,
    reason="ultralytics installed: export would try the network",
)
def test_export_without_ultralytics_is_a_clear_error(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("export", "yolo11n", "--models-dir", str(models_dir)) == 1
    assert "needs the 'ultralytics' package" in capsys.readouterr().err
