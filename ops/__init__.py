"""Running Assay's backing services (Redis, S3, clamd, PostgreSQL) on one machine."""
