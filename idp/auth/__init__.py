"""Login methods and the state of a login, independent of the web framework."""
