"""Consent ledger, suppression list, and a contact's export and erasure across every store."""
