"""A tiny name -> object registry with a strict ``get`` (one per extension point)."""

from .errors import PruningError


class Registry(dict):
    """A dict whose ``get`` raises a clear error naming every valid choice."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str, doc: str | None = None, **attributes):
        """A decorator: ``obj`` under ``name``, with ``doc`` and any ``attributes`` set on it."""
        def decorator(obj):
            self[name] = obj
            if doc is not None:
                obj.doc = doc
            for key, value in attributes.items():
                setattr(obj, key, value)
            return obj

        return decorator

    def get(self, name):  # noqa: D401 - strict on purpose
        if name not in self:
            raise PruningError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self)}")
        return self[name]
