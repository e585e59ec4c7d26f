"""Index versions: the family type, a served model's identity by probes, the promotion gate, and promote /
rollback / drop."""
