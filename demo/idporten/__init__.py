"""A fake ID-porten for `make demo`: DEVELOPMENT ONLY (see app.py)."""
