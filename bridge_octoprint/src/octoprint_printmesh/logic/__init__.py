"""The plugin's pure core: plain functions of (state, input, now) -> (new state, output).

Nothing in this package imports OctoPrint, MQTT or a clock, so every rule (bounds, the
hold state machine, ETAs, fan speeds, the publish policy) is unit-tested without a broker
or a printer. The plugin class only feeds it OctoPrint's callbacks and carries out what
it returns.
"""
