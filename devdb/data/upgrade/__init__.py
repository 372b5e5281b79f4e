"""`inv db-upgrade`: a newer PostgreSQL major version, in steps: plan, copy, prove, switch; rollback and finish."""
