"""Storage: tables (models.py), opening a database (db.py), the single writer (recorder.py), reads (queries.py)."""
