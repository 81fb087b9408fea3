"""Write operations of the ML domain; each owns its transaction and writes the audit event."""
