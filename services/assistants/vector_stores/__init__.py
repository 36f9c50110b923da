"""Vector stores: the stores (``stores``), their files and batches (``store_files``), and
hybrid search over their chunks (``search``, ``index``)."""
