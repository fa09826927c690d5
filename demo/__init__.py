"""Made-up partners for development and tests (DEVELOPMENT ONLY); not part of the idp package.

A regular package, not a namespace one: any installed package named ``demo`` would otherwise
shadow this folder.
"""
