"""The Dashboard tab: a view of the whole mesh, fed by the plugin's one MQTT client.

``model`` (pure) keeps what the mesh says, ``sections`` turns it into the compact JSON the
page shows, ``coalescer`` (pure) decides what to send and when, ``service`` is the thin
shell (subscriptions, the worker thread, the images), ``layout`` the widgets' settings and
``ui`` OctoPrint's API, routes and permission.
"""
