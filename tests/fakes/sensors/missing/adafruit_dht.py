"""Stands for "adafruit-circuitpython-dht is not installed": importing it fails like a missing module.

Put this directory first on PYTHONPATH, so the test does not depend on whether the
library happens to be installed in the venv that runs it.
"""

raise ModuleNotFoundError("No module named 'adafruit_dht'", name="adafruit_dht")
