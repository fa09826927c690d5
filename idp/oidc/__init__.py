"""OpenID Connect provider: the only code that touches pyop."""
