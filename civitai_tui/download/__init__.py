"""The file downloader: segments, resume state, retry policy, HTTP session."""
