"""Storage lifecycle: the trash, retention, garbage collection, backup (see docs/lifecycle.md).

Each module has one job and is imported on its own (``cairn.lifecycle.trash``,
``cairn.lifecycle.gc``, ...); this package imports nothing, so ``import cairn`` stays light.
"""
