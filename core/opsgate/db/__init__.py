"""Database access: pool, named SQL, migrations, embedded server."""
