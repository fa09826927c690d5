"""Faithful stand-ins for the services the IdP talks to upstream (ID-porten, a university's SAML
IdP), each a small real HTTP server on loopback, with helpers to make it misbehave."""
