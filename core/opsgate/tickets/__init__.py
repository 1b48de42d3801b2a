"""Canonical tickets, their notes, attachments and state changes."""
