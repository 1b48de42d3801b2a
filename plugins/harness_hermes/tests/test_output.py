"""parse_line and detect_failure on real captured `hermes -z` output and usage reports (Hermes 0.19.0)."""

from __future__ import annotations

import shutil

from opsgate_harness_hermes import HermesHarness, HermesSettings

harness = HermesHarness(HermesSettings(), environ={"PATH": "/nonexistent"})


def with_usage(tmp_path, data_dir, name):
    if name:
        shutil.copy(data_dir / name, tmp_path / ".hermes-usage.json")
    return str(tmp_path)


def test_success(tmp_path, data_dir):
    out = (data_dir / "stdout_success.txt").read_text()
    [event] = [e for e in map(harness.parse_line, out.splitlines()) if e]
    assert event.kind == "message" and event.text == "All done."
    assert harness.detect_failure(with_usage(tmp_path, data_dir, "usage_success.json"), 0, out) is None


def test_model_401_exits_zero_and_prints_the_error_as_the_answer(tmp_path, data_dir):
    out = (data_dir / "stdout_401.txt").read_text()
    [event] = [e for e in map(harness.parse_line, out.splitlines()) if e]
    assert event.kind == "error" and event.text == "HTTP 401: scripted failure 401"
    reason = harness.detect_failure(with_usage(tmp_path, data_dir, "usage_failed.json"), 0, out)
    assert reason == "hermes reported a failed run (exit 0): HTTP 401: scripted failure 401"


def test_model_500(tmp_path, data_dir):
    out = (data_dir / "stdout_500.txt").read_text()
    assert harness.parse_line(out.splitlines()[0]).kind == "error"
    assert "failed run" in harness.detect_failure(with_usage(tmp_path, data_dir, "usage_failed.json"), 0, out)


def test_missing_or_emptied_usage_report(tmp_path):
    assert harness.detect_failure(str(tmp_path), 1, "hermes -z: agent failed: boom\n") == (
        "hermes exited 1 without a usage report: hermes -z: agent failed: boom")
    (tmp_path / ".hermes-usage.json").write_text("")  # reset by build_command's files
    assert harness.detect_failure(str(tmp_path), 0, "some answer\n") is not None


def test_incomplete_and_nonzero_exit(tmp_path):
    (tmp_path / ".hermes-usage.json").write_text('{"completed": false, "failed": false}')
    assert "did not complete" in harness.detect_failure(str(tmp_path), 0, "partial\n")
    (tmp_path / ".hermes-usage.json").write_text('{"completed": true, "failed": false}')
    assert harness.detect_failure(str(tmp_path), 2, "x\n") == "hermes exited 2: x"


def test_parse_line_noise():
    assert harness.parse_line("") is None and harness.parse_line("   ") is None
    assert harness.parse_line("Traceback (most recent call last):").kind == "error"
    assert harness.parse_line("  indented answer line").text == "  indented answer line"
