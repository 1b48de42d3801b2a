"""The fake model server's Anthropic Messages side (what Claude Code speaks), plus shared behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from opsgate.testing.fake_model import FakeModelServer, final, shell

BASH_TOOL = {"name": "Bash", "input_schema": {"type": "object"}}


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for frame in text.strip().split("\n\n"):
        name = next(line[7:] for line in frame.splitlines() if line.startswith("event: "))
        data = json.loads(next(line[6:] for line in frame.splitlines() if line.startswith("data: ")))
        events.append((name, data))
    return events


def test_stream_plays_the_script_by_tool_results():
    with FakeModelServer([shell("echo hi > x"), final("all done")]) as fake:
        body = {"model": "m1", "stream": True, "tools": [BASH_TOOL],
                "messages": [{"role": "user", "content": "go"}]}
        r = httpx.post(fake.url + "/v1/messages?beta=true", json=body, headers={"x-api-key": "k1"})
        assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
        events = sse_events(r.text)
        assert [n for n, _ in events] == ["message_start", "content_block_start", "content_block_delta",
                                          "content_block_stop", "message_delta", "message_stop"]
        assert events[1][1]["content_block"]["name"] == "Bash"
        assert json.loads(events[2][1]["delta"]["partial_json"])["command"] == "echo hi > x"
        assert events[4][1]["delta"]["stop_reason"] == "tool_use"

        body["messages"] += [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash",
                                                                "input": {}}]},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                           "content": "ok"}]},
                             {"role": "system", "content": "reminder"}]
        events = sse_events(httpx.post(fake.url + "/v1/messages", json=body).text)
        assert events[2][1]["delta"] == {"type": "text_delta", "text": "all done"}
        assert events[4][1]["delta"]["stop_reason"] == "end_turn"

        [first, second] = fake.model_requests()
        assert first.model == "m1" and first.api_key == "k1" and first.tool_names == ["Bash"]
        assert first.query == {"beta": ["true"]} and second.tool_results() == 1


def test_non_stream_side_call_without_tools_gets_text():
    with FakeModelServer([shell("x"), final("summary text")]) as fake:
        r = httpx.post(fake.url + "/v1/messages", json={"model": "m", "messages": [{"role": "user", "content": "t"}]})
        assert r.json()["content"] == [{"type": "text", "text": "summary text"}]
        assert r.json()["stop_reason"] == "end_turn"


def test_count_tokens_models_probe_and_404():
    with FakeModelServer(model="fake-x") as fake:
        assert httpx.post(fake.url + "/v1/messages/count_tokens", json={"messages": []}).json()["input_tokens"] >= 1
        assert httpx.head(fake.url + "/").status_code == 200
        assert httpx.get(fake.url + "/v1/models").json()["data"][0]["id"] == "fake-x"
        assert httpx.get(fake.url + "/v1/models/fake-x").json()["id"] == "fake-x"
        assert httpx.get(fake.url + "/v1/models/other").status_code == 404
        r = httpx.get(fake.url + "/api/tags")
        assert r.status_code == 404 and "error" in r.json()
        assert [q.protocol for q in fake.requests] == ["count_tokens", "probe", "models", "models", "models", "other"]


def test_failure_mode_and_fail_times():
    with FakeModelServer(fail_status=401, fail_times=1) as fake:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        r = httpx.post(fake.url + "/v1/messages", json=body)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert httpx.post(fake.url + "/v1/messages", json=body).status_code == 200


def test_scripts_by_marker():
    with FakeModelServer([final("default")], scripts={"TASK-B": [final("b answer")]}) as fake:
        body = {"model": "m", "tools": [BASH_TOOL], "system": [{"type": "text", "text": "id TASK-B"}],
                "messages": [{"role": "user", "content": "x"}]}
        assert httpx.post(fake.url + "/v1/messages", json=body).json()["content"][0]["text"] == "b answer"


def test_stall_during_stream():
    with FakeModelServer(stall_during=0.5) as fake:
        started = time.monotonic()
        httpx.post(fake.url + "/v1/messages", json={"model": "m", "stream": True, "messages": []})
        assert time.monotonic() - started >= 0.5


def test_runs_as_a_module():
    proc = subprocess.Popen([sys.executable, "-m", "opsgate.testing.fake_model", "--port", "0", "--final", "hi"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:"), line
        r = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": []})
        assert r.json()["choices"][0]["message"]["content"] == "hi"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
