"""Permission-wall access requests: a child access ticket, an approval gate and an optional lease.

`/api/access/me|roles|users|policies|tokens` belong to `opsgate.auth`; this
package owns `/api/tickets/{id}/access-request(s)`.
"""
