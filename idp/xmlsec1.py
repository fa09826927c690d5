"""The xmlsec1 program pysaml2 signs and verifies with: for our IdP (idp.saml) and for our service
provider towards upstream federations (idp.auth.federation) alike."""

from __future__ import annotations

import os
from pathlib import Path

from idp.errors import ConfigError


def xmlsec_program(configured: Path | str) -> Path:
    """The xmlsec1 that IDP_XMLSEC_BINARY names (never searched for on PATH), or a ConfigError naming the setting."""
    xmlsec = Path(configured)
    if not (xmlsec.is_file() and os.access(xmlsec, os.X_OK)):
        raise ConfigError(f"xmlsec1 not found at {xmlsec}: install it (Debian: apt-get install xmlsec1) or set "
                          "IDP_XMLSEC_BINARY")
    return xmlsec
