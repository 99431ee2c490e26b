"""7-Zip back end (filled in below)."""

FORMATS: tuple[str, ...] = ()


def extract(path, outdir, limits, timeout):
    return []
