"""Catalogers: each reads the files one kind of package manager leaves behind.

Every module exposes ``collect(members) -> Iterable[Component]``; a cataloger only
reads the members whose locations concern it, and never fails on a malformed
file (it is skipped: the virus engines still see it).
"""
