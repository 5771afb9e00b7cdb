"""Download benchmarks: our downloader against aria2c and curl on a local server.

Run with ``make bench`` or ``python -m bench.run --help``; see ``bench/README.md``.
"""
