"""The JSON log formatter: fields, context, redaction, exceptions."""

import json
import logging

from opsgate.logging import JsonFormatter, request_id_var, ticket_id_var


def _record(msg, *args, exc_info=None, **extra):
    record = logging.LogRecord("opsgate.test", logging.INFO, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_json_line_has_the_fields_context_and_redaction():
    token = request_id_var.set("req-1")
    ticket = ticket_id_var.set(9)
    try:
        line = JsonFormatter().format(_record("ticket %s", "created", ticket_id=5, status="new", api_token="s3cret",
                                              obj=object()))
    finally:
        request_id_var.reset(token)
        ticket_id_var.reset(ticket)
    event = json.loads(line)
    assert event["event"] == "ticket created" and event["level"] == "info" and event["logger"] == "opsgate.test"
    assert event["timestamp"].endswith("Z") and event["request_id"] == "req-1"
    assert event["ticket_id"] == 9  # the context variable wins over extra=, as in the text format
    assert event["status"] == "new" and event["api_token"] == "[redacted]" and event["obj"].startswith("<object")
    assert "s3cret" not in line


def test_json_line_carries_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        line = JsonFormatter().format(_record("failed", exc_info=sys.exc_info()))
    assert "ValueError: boom" in json.loads(line)["exception"]
