"""What is risky in pending migrations.

Every check has a stable code, a level and a fix (findings.py). Checks read
three things: the operations (operations.py, running_code.py), the SQL the
schema editor would run on this database, as `sqlmigrate` shows it and as the
database's own grammar reads it (sql.py, postgresql_locks.py), and the data:
row counts, NULLs, duplicates (context.py)."""
