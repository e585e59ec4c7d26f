"""Which files a source holds, their listings, and what changed since the last sync."""
