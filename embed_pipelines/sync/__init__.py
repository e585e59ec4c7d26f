"""Which files a source holds, what changed since the last sync, and the loop that syncs only that."""
