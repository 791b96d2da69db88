"""Frozen settings objects (:class:`~lmodp.accounting.spec.RunSpec`, the search's and fine-tuning's
options): checked copies, and one value from an options object and keywords."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, ClassVar, TypeVar

from lmodp._renamed import renamed_keyword

T = TypeVar("T", bound="Settings")


class Settings:
    """Base of a frozen dataclass of settings whose ``__post_init__`` checks them.

    ``RENAMED`` maps a deprecated field (kept, default ``None``) to the field that replaced it;
    ``__post_init__`` calls :meth:`_take_renamed` to move a value given under the old name."""

    RENAMED: ClassVar[dict[str, str]] = {}

    def _take_renamed(self) -> None:
        for old, new in self.RENAMED.items():
            value = getattr(self, old)
            if value is not None:
                default = next(f.default for f in fields(self) if f.name == new)
                given = getattr(self, new)
                taken = renamed_keyword(type(self).__name__, old=old, new=new, old_value=value,
                                        new_value=None if given == default else given)
                object.__setattr__(self, new, taken)
                object.__setattr__(self, old, None)

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` (each checked)."""
        return replace(self, **changes)

    @classmethod
    def merged(cls: type[T], options: T | None = None, **changes: Any) -> T:
        """``options`` (default: ``cls()``) with ``changes``; ValueError naming an unknown setting."""
        if options is None:
            options = cls()
        elif not isinstance(options, cls):
            raise ValueError(f"options must be a {cls.__name__}, got {type(options).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} setting(s) {unknown}; the settings are {known}")
        return options.replace(**changes) if changes else options
