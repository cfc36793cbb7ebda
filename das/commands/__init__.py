"""CLI use cases: one module per command area, loaded lazily by ``das.cli``.

This layer sits above the domain and the runtime: it parses options, calls use-case
functions, and prints through ``das.views``. Nothing below imports it.
"""
