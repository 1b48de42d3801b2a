"""A scripted fake model server for driving the real agent CLIs in tests.

One port speaks three wire protocols (see `docs`/`harnesses.md` §5):

- Anthropic Messages, SSE (`POST …/messages[?beta=true]`, `…/messages/count_tokens`): Claude Code;
- OpenAI Responses, SSE (`POST …/responses`): Codex;
- OpenAI Chat Completions, SSE or plain JSON (`POST …/chat/completions`): Hermes;

plus `GET …/models`, `GET …/models/{id}` and `HEAD /`. Anything else is a 404
with a JSON body.

The conversation is a script of steps, e.g. ``[shell("echo hi > x"),
final("done")]``. The server is stateless: it counts the tool results already
in the request's conversation and plays the step with that index. A request
that offers no tools (title or summary side-calls) gets plain text.

    with FakeModelServer(script=[shell("touch proof"), final("ok")]) as fake:
        env["ANTHROPIC_BASE_URL"] = fake.url
        ...
        assert fake.requests[0].model == "fake-model"

`RecordingApi` is a tiny stand-in for the opsgate API that records every
request (the agent's `curl` callbacks). `run_cli` starts a harness command the
way the runner does (own process group, stdin closed, timeout).

Run standalone with ``python -m opsgate.testing.fake_model --port 8400``.
"""

from opsgate.testing.fake_model.api import RecordedCall, RecordingApi
from opsgate.testing.fake_model.process import CliResult, run_cli
from opsgate.testing.fake_model.server import (
    FakeModelServer,
    RecordedRequest,
    Step,
    final,
    shell,
)

__all__ = [
    "CliResult",
    "FakeModelServer",
    "RecordedCall",
    "RecordedRequest",
    "RecordingApi",
    "Step",
    "final",
    "run_cli",
    "shell",
]
