"""Package discovery that pyproject.toml cannot express on its own: every package under idp/ is
found automatically, and the pages in the top-level templates/ folder ship as idp.templates (the
package-dir mapping in pyproject.toml), a package no [tool.setuptools.packages.find] can reach."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["idp", "idp.*"]), "idp.templates"])
