"""Approval gates (change requests): request, approve, reject, complete, expire.

See ARCHITECTURE.md "Approval gates". The state machine is
`pending -> approved | rejected | expired | cancelled`,
`approved -> completed | failed | expired`; every transition is one
compare-and-set UPDATE and writes an audit row, a domain event and a ticket
note in the same transaction.
"""
