"""Delivering files: the stores by URL scheme (registry.py), what a store is (store.py), one
module per store (local, s3, gcs, azure, sftp, http_post), URL templates (targets.py), writing
temporary files and parts (sink.py) and publishing them all or nothing (publish.py).

Layers, lowest first: urls, targets, failures and store know no store; each store's module
knows only its own; registry knows them all; sink and publish use the registry through the
destination parameter (flows/core/config.py)."""
