"""parse_line and detect_failure on real captured `codex exec --json` output of Codex 0.171.0."""

from __future__ import annotations

from opsgate_harness_codex import CodexHarness, CodexSettings

harness = CodexHarness(CodexSettings(), environ={"PATH": "/nonexistent"})


def events(path):
    return [e for e in (harness.parse_line(line) for line in path.read_text().splitlines()) if e is not None]


def test_success_stream(data_dir):
    evs = events(data_dir / "jsonl_success.jsonl")
    assert [e.kind for e in evs] == ["message", "error", "tool_call", "tool_result", "message", "final"]
    started, metadata, call, result, message, final = evs
    assert started.data["thread_id"]
    assert metadata.data["fatal"] is False  # "Model metadata … not found" is harmless
    assert call.text == "/bin/bash -lc 'echo hello > proof.txt; env > env.txt'"
    assert result.data["exit_code"] == 0 and result.data["status"] == "completed"
    assert message.text == "All done."
    assert final.data["usage"]["output_tokens"] == 10
    assert harness.detect_failure("/w", 0, (data_dir / "jsonl_success.jsonl").read_text()) is None


def test_model_401(data_dir):
    tail = (data_dir / "jsonl_401.jsonl").read_text()
    evs = events(data_dir / "jsonl_401.jsonl")
    errors = [e for e in evs if e.kind == "error"]
    assert [e.data["fatal"] for e in errors] == [False, False, True, True]  # metadata, retry, error, turn.failed
    reason = harness.detect_failure("/w", 1, tail)
    assert reason.startswith("codex turn failed: unexpected status 401 Unauthorized")


def test_turn_failed_even_with_exit_zero():
    tail = '{"type":"turn.started"}\n{"type":"turn.failed","error":{"message":"boom"}}\n'
    assert harness.detect_failure("/w", 0, tail) == "codex turn failed: boom"


def test_no_turn_event():
    assert harness.detect_failure("/w", 1, "Error: wire_api = \"chat\" is no longer supported\n") == (
        'codex exited 1 without turn.completed: Error: wire_api = "chat" is no longer supported')
    assert harness.detect_failure("/w", 0, "Reading additional input from stdin...\n") is not None


def test_stderr_noise_and_unknown_items():
    assert harness.parse_line("Reading additional input from stdin...") is None
    assert harness.parse_line('{"type":"turn.started"}') is None
    ev = harness.parse_line('{"type":"item.completed","item":{"id":"i","type":"reasoning","text":"thinking"}}')
    assert ev.kind == "message" and ev.text == "thinking" and ev.data["item_type"] == "reasoning"
    ev = harness.parse_line('{"type":"item.completed","item":{"id":"i","type":"brand_new","text":"x"}}')
    assert ev.kind == "message" and ev.data["item_type"] == "brand_new"
    ev = harness.parse_line('{"type":"item.completed","item":{"id":"i","type":"file_change",'
                            '"changes":[{"path":"a.txt","kind":"add"}],"status":"completed"}}')
    assert ev.kind == "tool_result" and ev.data["paths"] == ["a.txt"]
