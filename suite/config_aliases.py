"""Old config keys that moved into a method's own section, e.g. ``model.depth`` -> ``rcae.depth``.

The table is the registry's (``MethodSpec.aliases``). Configs are upgraded as they are read
(``upgrade_keys``: old records, sweeps and search spaces keep loading); ``legacy_keys`` maps back
where that is one-to-one so ``config_hash`` of a configuration does not change with the move;
``report_view`` names a record's settings the same for records from before and after it.
"""

from __future__ import annotations

import copy
from typing import Any

from suite.config_presets import SHORTHANDS
from suite.errors import ConfigError
from suite.methods.registry import aliases, method_specs


def expand_shorthands(updates: dict[str, Any]) -> dict[str, Any]:
    """Nested updates with each shorthand key (``config_presets.SHORTHANDS``, e.g.
    ``rcae.photometric``) replaced by the keys it stands for; a key given in the same mapping wins."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in updates.items()}
    for key, choices in SHORTHANDS.items():
        section, _, name = key.partition(".")
        node = out.get(section)
        if not isinstance(node, dict) or name not in node:
            continue
        value = node.pop(name)
        if value not in choices:
            raise ConfigError(f"config key '{key}': {value!r} is not one of {', '.join(sorted(choices))}")
        for flat_key, flat_value in choices[value].items():
            dest_section, _, dest_name = flat_key.partition(".")
            dest = out.setdefault(dest_section, {})
            if isinstance(dest, dict):
                dest.setdefault(dest_name, copy.deepcopy(flat_value))
    return out


def upgrade_keys(updates: dict[str, Any]) -> dict[str, Any]:
    """Nested updates with old keys rewritten to the keys that replaced them (the methods'
    ``aliases``: ``model.depth`` -> ``rcae.depth`` and ``convae.depth``); a new key given in the
    same mapping wins. Keys that are neither stay, so unknown keys still fail."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in updates.items()}
    for old, targets in aliases().items():
        section, _, name = old.partition(".")
        node = out.get(section)
        if not isinstance(node, dict) or name not in node:
            continue
        value = node.pop(name)
        for target in targets:
            new_section, _, new_name = target.partition(".")
            dest = out.setdefault(new_section, {})
            if isinstance(dest, dict):
                dest.setdefault(new_name, copy.deepcopy(value))
    return out


def upgrade_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """``upgrade_keys`` for flat ``{"model.depth": 3}`` mappings (old records' configs, overrides)."""
    table = aliases()
    out: dict[str, Any] = {}
    for key, value in flat.items():
        for target in table.get(key, (key,)):
            out.setdefault(target, value)
    return {**out, **{k: v for k, v in flat.items() if k not in table}}


def legacy_keys(flat: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``upgrade_flat`` where it is one: new keys that all hold the same value are
    hashed under the old key, so configurations written with old keys keep their hash."""
    out = dict(flat)
    for old, targets in aliases().items():
        if all(t in out for t in targets) and all(out[t] == out[targets[0]] for t in targets):
            value = out[targets[0]]
            for t in targets:
                del out[t]
            out[old] = value
    return out


def report_view(flat: dict[str, Any], method: str) -> dict[str, Any]:
    """A record's flat config as reports name it, the same for records from before and after the
    move: the record's method's aliased fields under their old keys (``rcae.depth`` ->
    ``model.depth`` for an RcAE record), the other methods' aliased fields left out (they did not
    shape that record)."""
    upgraded = upgrade_flat(flat)
    section = next((s.config_section for s in method_specs() if s.name == method), None)
    out = dict(upgraded)
    for old, targets in aliases().items():
        for target in targets:
            out.pop(target, None)
        own = [t for t in targets if t.partition(".")[0] == section and t in upgraded]
        if own:
            out[old] = upgraded[own[0]]
    return out
