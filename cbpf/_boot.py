"""boot()'s registry: the objects it loaded and their maps by name. fetch(name, key), in C, asks find() for the map."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cbpf._maps import Map, Object


class Registry:
    """The booted objects, oldest first, and every map name they hold with the maps of that name."""

    def __init__(self) -> None:
        self.objects: list[Object] = []
        self._by_name: dict[str, list[Map]] = {}

    def add(self, obj: Object) -> None:
        self.objects.append(obj)
        for name, m in obj.maps.items():
            self._by_name.setdefault(name, []).append(m)

    def find(self, name: str) -> Map:
        """The one booted map called name; KeyError when no booted object has it, or several do."""
        found = self._by_name.get(name)
        if found is None:
            raise KeyError(f"no booted object has a map named {name!r}; booted maps: "
                           f"{', '.join(sorted(self._by_name)) or '(none)'}")
        if len(found) > 1:
            owners = ", ".join(m.object.name if m.object is not None else "?" for m in found)
            raise KeyError(f"map name {name!r} is ambiguous: booted objects {owners} all have it; use "
                           "Object.maps[name]")
        return found[0]

    def close_all(self) -> None:
        while self.objects:
            self.objects.pop().close()
        self._by_name.clear()


registry = Registry()


def find(name: str) -> Map:
    """The booted map called name (what cbpf.fetch(name, key) reads): KeyError when there is none, or several."""
    return registry.find(name)
