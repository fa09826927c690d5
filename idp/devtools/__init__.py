"""Development-only helpers (``make demo``): never used by a production server, which refuses them."""
