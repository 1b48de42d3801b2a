"""The fake model server's OpenAI Responses side (what Codex speaks)."""

from __future__ import annotations

import json

import httpx

from opsgate.testing.fake_model import FakeModelServer, final, shell

TOOLS = [{"type": "function", "name": "exec_command", "parameters": {}}, {"type": "web_search"}]


def sse(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_function_call_then_message():
    with FakeModelServer([shell("ls -la"), final("listed")]) as fake:
        body = {"model": "m2", "stream": True, "tools": TOOLS, "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}]}
        events = sse(httpx.post(fake.v1_url + "/responses", json=body, headers={"authorization": "Bearer k2"}).text)
        assert [e["type"] for e in events] == ["response.created", "response.output_item.added",
                                               "response.output_item.done", "response.completed"]
        item = events[2]["item"]
        assert item["type"] == "function_call" and item["name"] == "exec_command"
        assert json.loads(item["arguments"]) == {"cmd": "ls -la"}
        assert events[3]["response"]["output"] == [item]

        body["input"] += [item, {"type": "function_call_output", "call_id": item["call_id"], "output": "x"}]
        events = sse(httpx.post(fake.v1_url + "/responses", json=body).text)
        assert "response.output_text.delta" in [e["type"] for e in events]
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == "listed"
        assert [r.authorization for r in fake.model_requests()] == ["Bearer k2", None]
        assert fake.model_requests()[0].tool_names == ["exec_command", "web_search"]


def test_older_shell_tools_by_name():
    with FakeModelServer([shell("pwd"), final("ok")]) as fake:
        for name, expected in (("shell", {"command": ["bash", "-lc", "pwd"]}), ("shell_command", {"command": "pwd"})):
            body = {"model": "m", "stream": False, "tools": [{"type": "function", "name": name}], "input": []}
            out = httpx.post(fake.v1_url + "/responses", json=body).json()["output"][0]
            assert out["name"] == name and json.loads(out["arguments"]) == expected


def test_namespace_tools_are_seen():
    with FakeModelServer() as fake:
        body = {"model": "m", "stream": False, "input": [], "tools": [
            {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn"}]}]}
        httpx.post(fake.v1_url + "/responses", json=body)
        assert fake.model_requests()[0].tool_names == ["multi_agent_v1", "spawn"]


def test_error_body_is_openai_shaped():
    with FakeModelServer(fail_status=500) as fake:
        r = httpx.post(fake.v1_url + "/responses", json={"model": "m", "stream": True, "input": []})
        assert r.status_code == 500 and r.json()["error"]["type"] == "api_error"
