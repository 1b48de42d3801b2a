"""The fake model server's Chat Completions side (what Hermes speaks), streaming and not."""

from __future__ import annotations

import json

import httpx

from opsgate.testing.fake_model import FakeModelServer, final, shell

TOOLS = [{"type": "function", "function": {"name": "terminal", "parameters": {}}},
         {"type": "function", "function": {"name": "process", "parameters": {}}}]


def chunks(text: str) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            out.append(line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]))
    return out


def test_stream_tool_call_then_text():
    with FakeModelServer([shell("uptime"), final("up")]) as fake:
        body = {"model": "m3", "stream": True, "stream_options": {"include_usage": True}, "tools": TOOLS,
                "messages": [{"role": "user", "content": "go"}]}
        got = chunks(httpx.post(fake.v1_url + "/chat/completions", json=body,
                                headers={"Authorization": "Bearer k3"}).text)
        assert got[-1] == "[DONE]"
        call = got[0]["choices"][0]["delta"]["tool_calls"][0]
        assert call["function"]["name"] == "terminal"
        assert json.loads(call["function"]["arguments"]) == {"command": "uptime"}
        assert got[1]["choices"][0]["finish_reason"] == "tool_calls"
        assert got[2]["choices"] == [] and got[2]["usage"]["total_tokens"] > 0

        body["messages"] += [{"role": "assistant", "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": call["id"], "content": "{}"}]
        got = chunks(httpx.post(fake.v1_url + "/chat/completions", json=body).text)
        assert got[0]["choices"][0]["delta"]["content"] == "up"
        assert got[1]["choices"][0]["finish_reason"] == "stop"
        assert fake.model_requests()[0].api_key == "k3"


def test_non_stream_answers():
    with FakeModelServer([shell("id"), final("me")]) as fake:
        body = {"model": "m", "tools": TOOLS, "messages": [{"role": "user", "content": "x"}]}
        message = httpx.post(fake.v1_url + "/chat/completions", json=body).json()["choices"][0]["message"]
        assert message["tool_calls"][0]["function"]["name"] == "terminal" and "index" not in message["tool_calls"][0]
        del body["tools"]  # a title side-call
        reply = httpx.post(fake.v1_url + "/chat/completions", json=body).json()
        assert reply["choices"][0]["message"] == {"role": "assistant", "content": "me"}
        assert reply["choices"][0]["finish_reason"] == "stop"


def test_bad_body_and_401():
    with FakeModelServer(fail_status=401) as fake:
        assert httpx.post(fake.v1_url + "/chat/completions", content=b"not json").status_code == 400
        r = httpx.post(fake.v1_url + "/chat/completions", json={"model": "m", "messages": []})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
