"""Drivers: one module each, chosen by ``driver:`` in a sensor's config.

Adding one: a module with a ``SensorBase`` subclass (its options, ``driver: Literal[...]``
and ``build()``) and a ``Driver`` subclass, then an entry in ``config.SensorConfig``.
"""
