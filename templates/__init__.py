"""The pages a person sees (Jinja templates); shipped as the package idp.templates."""
