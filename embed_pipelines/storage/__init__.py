"""Where things are kept: Parquet stores (and a dry run's scratch view of them), pgvector tables, the version
registry and the database. Never torch."""
