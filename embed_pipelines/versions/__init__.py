"""Index versions: identity, families, the promotion gate, and promote / rollback / drop."""
