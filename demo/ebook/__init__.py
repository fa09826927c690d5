"""The demo e-book platform: a relying party of patron-idp. DEVELOPMENT ONLY."""
