"""Analytics: the SQLite collector, the analyzer and the reports."""
