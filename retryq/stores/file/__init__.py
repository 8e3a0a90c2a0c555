"""The JSON file store: the queue file, its bytes, its lock and its archive."""
