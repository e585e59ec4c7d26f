"""The vocabulary every floor shares: collection settings, shards, sources and locations, files, rows,
fingerprints. It imports nothing above it."""
