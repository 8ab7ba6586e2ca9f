"""The bridge's hold, in one place: a print stopped at a layer for captures, then let go.

- ``machine``: the pure machine, ``step(state, input, now, config) -> (state, actions)``;
  ``types`` its state, inputs, actions and settings; ``views`` the status, the 'held'
  event and the refusals built from a state; ``safety`` the moves it may plan.
- ``driver``: the one writer of the hold's state. OctoPrint's threads, the commands and
  the broker reach the machine only through its named methods.
- ``commands``: the ``hold``/``release``/``move``/``gcode`` requests turned into inputs.
- ``link``: the hold's side of the broker (its events, its retained status, the holders'
  last wills).

Nothing here imports OctoPrint; the plugin binds the driver's effects to its printer.
"""
