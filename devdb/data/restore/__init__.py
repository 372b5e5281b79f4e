"""`inv db-restore`: any pg_dump format, untrusted, read whole before anything changes."""
