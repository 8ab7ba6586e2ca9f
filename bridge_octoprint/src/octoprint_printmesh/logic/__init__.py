"""The plugin's pure core: plain functions of (state, input, now) -> (new state, output).

Nothing in this package imports OctoPrint, MQTT or a clock, so every rule (G-code
parsing, ETAs, fan speeds, layer progress, the publish policy) is unit-tested without a
broker or a printer. The plugin only feeds it OctoPrint's callbacks and carries out what
it returns. The hold's rules (its machine, bounds and views) live in ``hold/``.
"""
