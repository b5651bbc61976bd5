"""Test support for every tier (dev dependency only; never imported by a service):
`infra` is the pytest plugin giving each run its own database and vhost, plus `wait_for`;
`ledger` builds the events and views the ledger's tests book."""
