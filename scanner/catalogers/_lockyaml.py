"""A reader for the block YAML that lock files are written in (pnpm, Yarn berry).

Lock files use a small, regular part of YAML: nested mappings by indentation,
quoted or plain keys and scalars, flow collections on one line. This reads that
part into nested dicts of strings (booleans for ``true``/``false``); block
sequences are skipped, a flow mapping is read one level deep, a flow sequence
is kept as its text. A file may hold several documents (``---``).
"""

from __future__ import annotations

#: Lines of one lock file (a large monorepo's pnpm lock has a few hundred thousand).
MAX_LINES = 4_000_000


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _key(content: str) -> tuple[str, str] | None:
    """(key, rest after the colon) of a ``key: value`` line, or None."""
    if content[0] in "'\"":
        quote = content[0]
        i = 1
        while i < len(content):
            if content[i] == quote:
                if quote == "'" and content[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                break
            i += 2 if quote == '"' and content[i] == "\\" else 1
        key, rest = content[: i + 1], content[i + 1 :].lstrip()
        if not rest.startswith(":"):
            return None
        return _unquote(key), rest[1:].strip()
    at = content.find(": ")
    if at < 0:
        if not content.endswith(":"):
            return None
        return content[:-1].strip(), ""
    return content[:at].strip(), content[at + 2 :].strip()


def _flow_mapping(value: str) -> dict | str:
    inside = value[1:-1].strip()
    if not inside:
        return {}
    if any(ch in inside for ch in "{}[]"):
        return value
    out: dict = {}
    for part in inside.split(","):
        found = _key(part.strip()) if part.strip() else None
        if found:
            out[found[0]] = _scalar(found[1])
    return out


def _scalar(value: str):
    if value.startswith("{") and value.endswith("}"):
        return _flow_mapping(value)
    if value[:1] not in "'\"" and " #" in value:
        value = value.split(" #", 1)[0].rstrip()
    if value in ("true", "false"):
        return value == "true"
    return _unquote(value)


def loads(body: str) -> dict:
    """The documents of ``body`` merged into one, the later winning."""
    merged: dict = {}
    for document in documents(body):
        merged.update(document)
    return merged


def documents(body: str) -> list[dict]:
    """Each document of ``body``."""
    root: dict = {}
    roots = [root]
    stack: list[tuple[int, dict]] = [(-1, root)]
    sequence_at: int | None = None
    for count, line in enumerate(body.splitlines()):
        if count >= MAX_LINES:
            raise ValueError("lock file has too many lines")
        content = line.strip()
        if not content or content.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0 and content in ("---", "..."):
            if root:
                root = {}
                roots.append(root)
            stack, sequence_at = [(-1, root)], None
            continue
        if sequence_at is not None and (indent > sequence_at or content.startswith("-")):
            continue
        sequence_at = None
        if content == "-" or content.startswith("- "):
            sequence_at = indent
            continue
        found = _key(content)
        if found is None:
            continue
        key, value = found
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value == "" or value.startswith(("|", ">")):
            child = parent.get(key) if isinstance(parent.get(key), dict) else {}
            parent[key] = child
            stack.append((indent, child))
        else:
            parent[key] = _scalar(value)
    return [d for d in roots if d]
