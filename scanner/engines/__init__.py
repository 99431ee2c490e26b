"""Virus and malware engines behind :mod:`scanner.virus`: ClamAV (clamd or clamscan) and YARA."""
