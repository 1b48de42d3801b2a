"""Pure conversions: dates and DST, markers, titles, notes, cursor encoding."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from opsgate_provider_itop import cursor as cursors
from opsgate_provider_itop import mapping

PARIS = ZoneInfo("Europe/Paris")


def test_dates_are_server_local_and_become_utc():
    assert mapping.parse_date("2024-01-15 10:00:00", PARIS) == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
    assert mapping.parse_date("2024-07-15 10:00:00", PARIS) == datetime(2024, 7, 15, 8, 0, tzinfo=UTC)
    assert mapping.parse_date("", PARIS) is None and mapping.parse_date("garbage", PARIS) is None
    # the repeated hour of the autumn change reads as its earlier instant (conservative watermark)
    assert mapping.parse_date("2024-10-27 02:30:00", PARIS) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert mapping.format_date(datetime(2024, 7, 15, 8, 0, tzinfo=UTC), PARIS) == "2024-07-15 10:00:00"


def test_marker_round_trip_and_stripping():
    html = mapping.description_html("Line <1>\nLine 2", "og-1&2")
    assert html == "<p>Line &lt;1&gt;<br>Line 2</p><p>[opsgate-marker:og-1&amp;2]</p>"
    assert mapping.marker_in(html) == "og-1&2"
    assert mapping.description_text(html) == "Line <1>\nLine 2"
    assert mapping.marker_in("<p>no marker</p>") is None
    assert mapping.description_html("", "") == "<p>-</p>"


def test_title_trim_and_class_names():
    assert mapping.trim_title("  a\n b  ") == "a b"
    assert len(mapping.trim_title("é" * 400)) == mapping.TITLE_MAX
    assert mapping.itop_class("user-request") == "UserRequest"
    assert mapping.itop_class("Incident") == "Incident" and mapping.itop_class("change") is None


def test_priority_round_trip():
    for p in ("P1", "P2", "P3", "P4"):
        impact, urgency = mapping.priority_to_itop(p)
        assert impact in ("1", "2", "3") and urgency in ("1", "2", "3", "4")
    assert mapping.priority_to_itop(None) == mapping.PRIORITY_TO_ITOP["P3"]
    assert mapping.priority_from_itop("4") == "P4" and mapping.priority_from_itop("9") is None


def test_notes_ignore_malformed_logs():
    fields = {"public_log": {"entries": [{"date": "2024-05-02 09:47:48", "user_login": "Bot", "user_id": "2",
                                           "message": "ok", "message_html": "<p>ok</p>"}, "junk"]},
              "private_log": None}
    (note,) = mapping.notes_from(fields, PARIS)
    assert note.body == "ok" and note.visibility == "user" and note.author == "Bot"
    assert note.key.startswith("public_log:") and note.key.endswith(":0")


def test_cursor_round_trip():
    state = cursors.SyncCursor(since=datetime(2024, 5, 2, 8, 0, tzinfo=UTC), cls=1, page=3, seen=("Incident::1@x",))
    text = cursors.encode(state)
    assert text.startswith("itop1.") and cursors.decode(text) == state
    assert cursors.decode(text).in_sweep and not cursors.decode(None).in_sweep
