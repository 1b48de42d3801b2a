"""Service-desk intake: RACI routing rules, classification, clarification, submit and auto-assignment."""
