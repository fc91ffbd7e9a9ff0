"""Forwarding between hub levels (docs/hub.md, "Levels"): a township hub forwards what it accepted to its
county hub, the county to the city, with the same signed protocol the gateways use.

- `chain`: the chain of hubs a forwarded record keeps in its provenance, and the check of it on arrival;
- `outbox`: the forward outbox (queued in the accepted batch's own transaction), claims and receipts;
- `upstream`: the HTTP client to the upper hub (the standard library's `http.client`: the hub may not
  import `requests` nor the gateway's push client, and one keep-alive POST is all it needs);
- `worker`: the forwarder, one per database (a PostgreSQL advisory lock, a lock file for SQLite).
"""
