"""Security: secret redaction, hash verification, format checks, pickle scans, quarantine."""
