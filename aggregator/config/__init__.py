"""Configuration: the YAML file parsed once into frozen, typed settings.

Enters: ``config/sources.yaml`` (or ``--config``/``AGGREGATOR_CONFIG``) and environment.
Leaves: ``Settings`` (``settings``), durations (``durations``) and a watcher that reloads
the file when it changes (``reload``).
"""
