"""One binding of config keys to settings dataclasses.

A settings field names the key it comes from: ``connections: int = bound("download.connections",
8)``. :func:`from_config` builds settings from those keys (and settings nested in them),
:func:`apply` sets the fields bound to one changed key on settings a running part holds
(``config set`` on a live key), :func:`keys_of` lists what a class reads. The keys themselves
(type, default, rules, live or restart) are declared in :data:`civitai_tui.config.OPTIONS`.

Standard library only, so any settings module can use it without an import cycle.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

KEY = "config_key"
READ = "config_read"
UPDATE = "config_update"

T = TypeVar("T")


class Values(Protocol):
    """What the settings are read from (a :class:`~civitai_tui.config.Config`)."""

    def get(self, key: str) -> Any: ...


def bound(
    key: str,
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    read: Callable[[Any], Any] | None = None,
    update: Callable[[Any, Any], None] | None = None,
) -> Any:
    """A dataclass field whose value is config key ``key``.

    ``read`` turns the key's value into the field's (``"5%"`` → a rule, MiB → bytes);
    ``update(current, key's value)`` changes a live object in place instead of replacing
    it (a speed limiter the running downloads share).
    """
    metadata: dict[str, Any] = {KEY: key}
    if read is not None:
        metadata[READ] = read
    if update is not None:
        metadata[UPDATE] = update
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def _value(field: dataclasses.Field[Any], values: Values) -> Any:
    raw = values.get(field.metadata[KEY])
    read = field.metadata.get(READ)
    return raw if read is None else read(raw)


def _nested(field: dataclasses.Field[Any]) -> type | None:
    """The settings class built by ``field``'s default factory, if it binds keys."""
    factory = field.default_factory
    return factory if isinstance(factory, type) and keys_of(factory) else None


@functools.cache
def keys_of(cls: type) -> frozenset[str]:
    """Every key ``cls`` (and settings nested in it) reads."""
    if not dataclasses.is_dataclass(cls):
        return frozenset()
    keys: set[str] = set()
    for field in dataclasses.fields(cls):
        if KEY in field.metadata:
            keys.add(field.metadata[KEY])
        elif (nested := _nested(field)) is not None:
            keys |= keys_of(nested)
    return frozenset(keys)


def from_config(cls: type[T], values: Values, **given: Any) -> T:
    """``cls`` with its bound fields (and nested settings) from ``values``; ``given`` as is."""
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in given or not field.init:
            continue
        if KEY in field.metadata:
            kwargs[field.name] = _value(field, values)
        elif (nested := _nested(field)) is not None:
            kwargs[field.name] = from_config(nested, values)
    return cls(**kwargs, **given)


def apply(settings: Any, values: Values, key: str) -> bool:
    """Set the fields of live ``settings`` bound to ``key`` (nested ones too); True if any.

    Mutable settings change in place, so the parts holding them see the new value;
    frozen ones nested in them are replaced by an updated copy.
    """
    return _apply(settings, values, key, setattr)


def _apply(
    settings: Any, values: Values, key: str, assign: Callable[[Any, str, Any], None]
) -> bool:
    found = False
    for field in dataclasses.fields(settings):
        current = getattr(settings, field.name)
        if field.metadata.get(KEY) == key:
            if UPDATE in field.metadata:
                field.metadata[UPDATE](current, values.get(key))
            else:
                assign(settings, field.name, _value(field, values))
            found = True
        elif key in keys_of(type(current)):
            if current.__dataclass_params__.frozen:  # a copy nobody holds yet: fill it in
                current = dataclasses.replace(current)
                _apply(current, values, key, object.__setattr__)
                assign(settings, field.name, current)
            else:
                _apply(current, values, key, assign)
            found = True
    return found
