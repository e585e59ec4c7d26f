"""Where things are kept: Parquet state, row declarations, pgvector tables and the version registry."""
