"""Format readers: one :class:`~connectors.sources.base.Source` subclass per layout."""
