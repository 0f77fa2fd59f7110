"""Condensation methods and real-image baselines, chosen by name through one registry (timm-style).

    method = get_method("dc", fiex=True, fiem=True)      # or get_method("dc:fiex=on,fiem=on")
    synthetic = method.condense(context, ipc=10, seed=0)  # a SyntheticSet, evaluated like any other

Registered: trajectory matching (``pad``, ``datm``, ``mtt``), gradient matching (``dc``, ``dsa``),
distribution matching (``dm``) and the baselines (``random``, ``herding``, ``kcenter``, ``el2n-easy``,
``el2n-hard``, ``el2n-middle``). A method's switches are its dataclass fields (PAD's filters are
``fiex`` and ``fiem``); ``label`` names the switches that differ from the registered defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pad_sdk.errors import ConfigError
from pad_sdk.methods.base import Method, MethodContext, hard_labelled
from pad_sdk.methods.baselines import SELECTORS, RealSubset
from pad_sdk.methods.matching import DistributionMatchingMethod, GradientMatchingMethod
from pad_sdk.methods.trajectory import TrajectoryMatching

MethodFactory = Callable[..., Any]
_REGISTRY: dict[str, MethodFactory] = {}


def register_method(name: str, factory: MethodFactory) -> None:
    """Register ``factory(**switches)`` (returning a method whose ``name`` is ``name``) under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"method {name!r} is already registered")
    _REGISTRY[name] = factory


def available_methods() -> tuple[str, ...]:
    """Registered method names, in registration order (methods first, then baselines)."""
    return tuple(_REGISTRY)


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "yes"):
        return True
    if lowered in ("off", "false", "no"):
        return False
    for kind in (int, float):
        try:
            return kind(lowered)
        except ValueError:
            pass
    return text.strip()


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"dc:fiex=on,alpha=0.5"`` -> ("dc", {"fiex": True, "alpha": 0.5}); a bare name has no switches."""
    name, _, rest = spec.partition(":")
    switches: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"method switch {item!r} in {spec!r} must look like key=value", field="methods",
                              value=spec)
        switches[key.strip()] = _parse_value(value)
    return name.strip(), switches


def get_method(spec: str | Method, **switches: Any) -> Method:
    """The method registered under ``spec`` (``name`` or ``name:key=value,...``) with ``switches`` applied.

    Unknown names and switches raise :class:`ConfigError` listing the valid ones.
    """
    if not isinstance(spec, str):
        return dataclasses.replace(spec, **switches) if switches else spec  # type: ignore[type-var]
    name, parsed = parse_method_spec(spec)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(available_methods())}",
                          field="method", value=name)
    default = _REGISTRY[name]()
    chosen = {**parsed, **switches}
    valid = [f.name for f in dataclasses.fields(default) if f.name not in ("name", "selector")]
    unknown = sorted(set(chosen) - set(valid))
    if unknown:
        raise ConfigError(f"method {name!r} has no switch {', '.join(unknown)}; its switches are "
                          f"{', '.join(valid) or 'none'}", field="method", value=spec)
    return dataclasses.replace(default, **chosen)


def method_label(method: Method) -> str:
    """``name`` plus the switches that differ from the registered defaults, e.g. ``pad[fiem=off]``."""
    default = _REGISTRY[method.name]() if method.name in _REGISTRY else method
    changed = []
    for f in dataclasses.fields(method):  # type: ignore[arg-type]
        value = getattr(method, f.name)
        if f.name != "name" and value != getattr(default, f.name):
            shown = ("on" if value else "off") if isinstance(value, bool) else value
            changed.append(f"{f.name}={shown}")
    return method.name + (f"[{','.join(changed)}]" if changed else "")


register_method("pad", lambda **kw: TrajectoryMatching(name="pad", fiex=True, fiem=True, **kw))
register_method("datm", lambda **kw: TrajectoryMatching(name="datm", fiex=False, fiem=False, **kw))
register_method("mtt", lambda **kw: TrajectoryMatching(name="mtt", fiex=False, fiem=False, mtt=True, **kw))
register_method("dc", lambda **kw: GradientMatchingMethod(name="dc", augment=False, **kw))
register_method("dsa", lambda **kw: GradientMatchingMethod(name="dsa", augment=True, **kw))
register_method("dm", lambda **kw: DistributionMatchingMethod(name="dm", **kw))
for _selector in SELECTORS:
    register_method(_selector, lambda _s=_selector, **kw: RealSubset(name=_s, selector=_s, **kw))

__all__ = [
    "DistributionMatchingMethod",
    "GradientMatchingMethod",
    "Method",
    "MethodContext",
    "RealSubset",
    "TrajectoryMatching",
    "available_methods",
    "get_method",
    "hard_labelled",
    "method_label",
    "parse_method_spec",
    "register_method",
]
