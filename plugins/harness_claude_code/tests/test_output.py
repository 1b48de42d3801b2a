"""parse_line and detect_failure on real captured stream-json output of Claude Code 2.1.197."""

from __future__ import annotations

from opsgate_harness_claude_code import ClaudeCodeHarness, ClaudeCodeSettings

harness = ClaudeCodeHarness(ClaudeCodeSettings(env_scrub="off"), environ={"PATH": "/nonexistent"})


def events(path):
    return [e for e in (harness.parse_line(line) for line in path.read_text().splitlines()) if e is not None]


def test_success_stream(data_dir):
    evs = events(data_dir / "stream_success.jsonl")
    assert [e.kind for e in evs] == ["message", "tool_call", "tool_result", "message", "final"]
    init, call, result, message, final = evs
    assert init.data["subtype"] == "init" and init.data["model"] == "fake-model"
    assert init.data["version"] == "2.1.197"
    assert call.data["name"] == "Bash"
    assert call.text.startswith("Bash: echo hello > proof.txt")
    assert result.data["is_error"] is False
    assert message.text == "All done."
    assert final.text == "All done."
    assert final.data["is_error"] is False and final.data["num_turns"] == 2
    assert final.data["usage"]["output_tokens"] == 10


def test_success_has_no_failure(data_dir):
    assert harness.detect_failure("/w", 0, (data_dir / "stream_success.jsonl").read_text()) is None


def test_api_error_stream(data_dir):
    evs = events(data_dir / "stream_401.jsonl")
    kinds = [e.kind for e in evs]
    assert kinds[0] == "message" and kinds[-1] == "error"
    retry = evs[1]
    assert retry.kind == "error" and retry.data["subtype"] == "api_retry"
    assert evs[-1].data["api_error_status"] == 401
    reason = harness.detect_failure("/w", 1, (data_dir / "stream_401.jsonl").read_text())
    assert reason is not None and "401" in reason


def test_is_error_wins_over_exit_code_zero(data_dir):
    # Exit code 0 with is_error true (the exit code hides it).
    assert harness.detect_failure("/w", 0, (data_dir / "stream_401.jsonl").read_text()) is not None


def test_permission_denials_are_a_failure_despite_exit_zero(data_dir):
    tail = (data_dir / "stream_denied.jsonl").read_text()
    assert harness.parse_line(tail.splitlines()[-1]).kind == "final"
    reason = harness.detect_failure("/w", 0, tail)
    assert reason == "claude was refused tool permission for: Bash"


def test_max_turns_result():
    line = ('{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,'
            '"terminal_reason":"max_turns","permission_denials":[]}')
    ev = harness.parse_line(line)
    assert ev.kind == "error" and ev.data["subtype"] == "error_max_turns"
    assert "max_turns" in harness.detect_failure("/w", 1, line)


def test_no_result_line():
    reason = harness.detect_failure("/w", 1, "Error: Append system prompt file not found: /w/AGENTS.md\n")
    assert reason == "claude exited 1 without a result event: Error: Append system prompt file not found: /w/AGENTS.md"
    assert harness.detect_failure("/w", 0, "") is not None


def test_stderr_error_lines_and_noise():
    assert harness.parse_line("Error: bad flag").kind == "error"
    assert harness.parse_line("") is None
    assert harness.parse_line("   at <anonymous> (/$bunfs/root/src/entrypoints/cli.js:477:6115)") is None
    assert harness.parse_line("{not json") is None
    assert harness.parse_line('{"type":"stream_event","event":{}}') is None
    assert harness.parse_line('{"type":"system","subtype":"status"}') is None


def test_assistant_with_text_and_tool_use():
    line = ('{"type":"assistant","message":{"model":"m","content":[{"type":"text","text":"Let me look."},'
            '{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/w/a"}}]}}')
    ev = harness.parse_line(line)
    assert ev.kind == "tool_call" and ev.text == "Read" and ev.data["text"] == "Let me look."
