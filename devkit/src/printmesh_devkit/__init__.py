"""printmesh devkit: the main job on one machine and the test suite's real parts.

``printmesh up``, a local mosquitto (:mod:`printmesh_devkit.broker`) and a throwaway
OctoPrint with its virtual printer (:mod:`printmesh_devkit.virtual_octoprint`). Kept out of
``printmesh-core`` so a Pi and OctoPrint's venv carry only what a device needs.
"""
