"""Finding the installed claim plugins and refusing to start when two answer for one name."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from idp.claims.plugin import ClaimPlugin
from idp.claims.vocabulary import AGE_OVER_CLAIM, NAMED_CLAIMS, POLICY_VOCABULARY
from idp.claims.wording import Wording
from idp.errors import ConfigError, NotFound

GROUP = "idp.claims"


class ClaimCatalogue:
    """The plugins in use, each name answered by exactly one of them."""

    def __init__(self, entries: Iterable[tuple[str, ClaimPlugin]]) -> None:
        """``entries`` are (where the plugin came from, for messages; the plugin)."""
        self._fixed: dict[str, ClaimPlugin] = {}
        self._families: list[ClaimPlugin] = []
        self._sources: dict[int, str] = {}
        for source, plugin in entries:
            if id(plugin) in self._sources:
                continue  # the same object listed twice is one provider, not a clash
            self._sources[id(plugin)] = source
            self._add(plugin)

    def _add(self, plugin: ClaimPlugin) -> None:
        for name in plugin.names:
            other = self.plugin_for(name)
            if other is not None:
                self._clash(f"claim {name!r}", plugin, other)
        family = plugin.family
        if family is not None:
            for name, other in self._fixed.items():
                if family.matches(name):
                    self._clash(f"claim {name!r}", plugin, other)
            for other in self._families:
                assert other.family is not None  # noqa: S101 - only plugins with a family are in _families
                # Any name both could produce starts with both prefixes, so one prefix starts the other.
                if other.family.prefix.startswith(family.prefix) or family.prefix.startswith(other.family.prefix):
                    labels = dict.fromkeys((other.family.label, family.label))
                    self._clash(f"claim names {' and '.join(labels)}", plugin, other)
            self._families.append(plugin)
        self._fixed.update(dict.fromkeys(plugin.names, plugin))

    def _clash(self, what: str, new: ClaimPlugin, old: ClaimPlugin) -> None:
        raise ConfigError(f"Two claim plugins answer for {what}: {self._sources[id(old)]} and "
                          f"{self._sources[id(new)]}. Uninstall or unregister one of them.")

    def plugin_for(self, name: str) -> ClaimPlugin | None:
        if not isinstance(name, str):
            return None
        found = self._fixed.get(name)
        if found is None:
            found = next((p for p in self._families if p.family is not None and p.family.matches(name)), None)
        return found

    def provides(self, name: str) -> bool:
        return self.plugin_for(name) is not None

    def describe(self, name: str) -> Wording:
        """The consent wording for a claim (a message id and parameters, untranslated)."""
        plugin = self.plugin_for(name)
        if plugin is None:
            raise NotFound(f"No claim plugin provides {name!r}.")
        return plugin.describe(name)

    def source_of(self, name: str) -> str | None:
        """Which entry point answers for ``name``, for operators."""
        plugin = self.plugin_for(name)
        return self._sources[id(plugin)] if plugin is not None else None


def load_claims(found: Iterable[EntryPoint] | None = None) -> ClaimCatalogue:
    """Load the plugins behind ``found`` (by default the installed ``idp.claims`` entry points)."""
    chosen = entry_points(group=GROUP) if found is None else found
    entries = []
    for entry in sorted(chosen, key=lambda e: (e.name, e.value)):  # the same message on every start
        dist = getattr(entry, "dist", None)
        source = f"'{entry.name} = {entry.value}'" + (f" (from {dist.name})" if dist is not None else "")
        try:
            plugin = entry.load()
        except Exception as exc:  # any import failure is a start-up configuration error
            raise ConfigError(f"Claim plugin {source} could not be loaded: {type(exc).__name__}: {exc}") from exc
        if not isinstance(plugin, ClaimPlugin):
            raise ConfigError(f"Claim plugin {source} gives a {type(plugin).__name__!r}, not an "
                              "idp.claims.ClaimPlugin.")
        entries.append((source, plugin))
    return ClaimCatalogue(entries)


@functools.cache
def installed_claims() -> ClaimCatalogue:
    """The installed plugins, loaded once per process; call it at start-up so clashes stop the start."""
    catalogue = load_claims()
    missing = [name for name in POLICY_VOCABULARY if not catalogue.provides(name)]
    if missing:
        raise ConfigError(f"No claim plugin provides {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. "
                          "The IdP's own plugins are registered in pyproject.toml: reinstall it "
                          "(make install, or pip install -e .) so its entry points are current.")
    return catalogue


def is_known_claim(name: str) -> bool:
    """A built-in claim, or one an installed plugin provides (a relying party's policy may list either)."""
    if not isinstance(name, str):
        return False
    if name in NAMED_CLAIMS or AGE_OVER_CLAIM.fullmatch(name) is not None:
        return True
    return installed_claims().provides(name)
