"""The records of the hot path, built faster: frozen, slotted dataclasses
(``quick_init``) and enumerations hashed in C (``IdentityEnum``).

A REGISTER makes about 25 small records on its way through (peers, sources,
bindings, transaction events). ``@dataclass(frozen=True, slots=True)`` writes
an ``__init__`` that stores every field through ``object.__setattr__`` (a
frozen class refuses plain assignment), which looks the name up again for each
one. :func:`quick_init` gives such a class an ``__init__`` that stores through
the slot descriptors instead: the same signature, defaults, default factories
and ``__post_init__``, the class as frozen as before, in about 60% of the time.

This module imports nothing of ours: any layer may use it.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")

_FACTORY = object()  # "no value given": the field's default factory makes one


def quick_init(cls: type[T]) -> type[T]:
    """Decorate a ``@dataclass(frozen=True, slots=True)`` class (placed above
    the dataclass decorator). A class with a field it does not handle (not in
    ``__init__``, keyword-only, an ``InitVar``, inherited from a base class, or
    named ``self``) keeps the dataclass's own ``__init__``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init is for frozen, slotted dataclasses")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if (
        any(not f.init or f.kw_only for f in fields)
        # fields() leaves out InitVar (and ClassVar) pseudo-fields.
        or len(fields) != len(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        # A field of a base class has its slot there.
        or any(f.name not in cls.__dict__ for f in fields)
        # Names the generated code uses for itself.
        or any(f.name == "self" or f.name.startswith("__qi_") for f in fields)
    ):
        return cls
    namespace: dict[str, Any] = {"__qi_factory": _FACTORY}
    args: list[str] = []
    body: list[str] = []
    for i, f in enumerate(fields):
        namespace[f"__qi_set{i}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"__qi_default{i}"] = f.default
            args.append(f"{f.name}=__qi_default{i}")
            body.append(f"__qi_set{i}(self, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"__qi_factory{i}"] = f.default_factory
            args.append(f"{f.name}=__qi_factory")
            made = f"__qi_factory{i}() if {f.name} is __qi_factory else {f.name}"
            body.append(f"__qi_set{i}(self, {made})")
        else:
            args.append(f.name)
            body.append(f"__qi_set{i}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(args)}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


class IdentityEnum(Enum):
    """An enumeration hashed by identity, in C. ``Enum.__hash__`` is a Python
    function (``hash(self._name_)``), called whenever a member is a dict key
    or a set element: the transaction tables do that several times per
    message. Members are singletons and compare by identity, so the object's
    own hash is as good."""

    __hash__ = object.__hash__
