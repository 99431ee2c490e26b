"""Just enough of ELF, PE and Mach-O to find a section and read by virtual address.

Go build info and cargo-auditable data live in sections of the executables that
carry them; Go's older build info format also points to its strings by address.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from scanner.unpack import Member

#: Executables larger than this are not searched.
MAX_EXECUTABLE = 2 * 1024**3
_MIN_SIZE = 64
_MACHO = {
    b"\xfe\xed\xfa\xce": (">", 32),
    b"\xce\xfa\xed\xfe": ("<", 32),
    b"\xfe\xed\xfa\xcf": (">", 64),
    b"\xcf\xfa\xed\xfe": ("<", 64),
}


@dataclass
class Executable:
    f: BinaryIO
    size: int
    kind: str = ""  # "elf", "pe" or "macho"
    endian: str = "<"
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (offset, size)
    segments: list[tuple[int, int, int]] = field(default_factory=list)  # (vaddr, offset, size)

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset >= self.size:
            return b""
        self.f.seek(offset)
        return self.f.read(min(n, self.size - offset))

    def section(self, *names: str, limit: int = 64 * 1024 * 1024) -> bytes | None:
        for name in names:
            if name in self.sections:
                offset, size = self.sections[name]
                return self.read(offset, min(size, limit))
        return None

    def read_addr(self, addr: int, n: int) -> bytes | None:
        for vaddr, offset, size in self.segments:
            if vaddr <= addr and addr + n <= vaddr + size:
                data = self.read(offset + addr - vaddr, n)
                return data if len(data) == n else None
        return None


def is_executable(member: Member) -> bool:
    if member.size < _MIN_SIZE or member.size > MAX_EXECUTABLE:
        return False
    with open(member.path, "rb") as f:
        head = f.read(4)
    return executable_head(head, member.size)


def executable_head(head: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes starting with ``head`` (4 bytes at least) is searched."""
    if size < _MIN_SIZE or size > MAX_EXECUTABLE:
        return False
    return head[:4] == b"\x7fELF" or head[:2] == b"MZ" or head[:4] in _MACHO


def open_executable(f: BinaryIO, size: int) -> Executable | None:
    """Parse the headers of an ELF, PE or Mach-O file; None when it is none of them."""
    exe = Executable(f, size)
    head = exe.read(0, 64)
    try:
        if head[:4] == b"\x7fELF":
            exe.kind = "elf"
            _elf(exe, head)
        elif head[:2] == b"MZ":
            exe.kind = "pe"
            _pe(exe)
        elif head[:4] in _MACHO:
            exe.kind = "macho"
            _macho(exe, *_MACHO[head[:4]])
        else:
            return None
    except struct.error:
        pass  # truncated headers: what was read so far still serves
    return exe


def _elf(exe: Executable, head: bytes) -> None:
    bits64 = head[4] == 2
    e = exe.endian = ">" if head[5] == 2 else "<"
    if bits64:
        (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = (
            struct.unpack_from(e + "HHIQQQIHHHHHH", head, 16)
        )
    else:
        (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = (
            struct.unpack_from(e + "HHIIIIIHHHHHH", head, 16)
        )
    for i in range(min(phnum, 4096)):
        ph = exe.read(phoff + i * phentsize, phentsize)
        if bits64:
            ptype, _, offset, vaddr, _, filesz = struct.unpack_from(e + "IIQQQQ", ph)
        else:
            ptype, offset, vaddr, _, filesz = struct.unpack_from(e + "IIIII", ph)
        if ptype == 1:  # PT_LOAD
            exe.segments.append((vaddr, offset, filesz))
    headers = []
    for i in range(min(shnum, 65536)):
        sh = exe.read(shoff + i * shentsize, shentsize)
        if bits64:
            name, stype, _, addr, offset, size = struct.unpack_from(e + "IIQQQQ", sh)
        else:
            name, stype, _, addr, offset, size = struct.unpack_from(e + "IIIIII", sh)
        headers.append((name, stype, addr, offset, size))
    if not headers or shstrndx >= len(headers):
        return
    names = exe.read(headers[shstrndx][3], min(headers[shstrndx][4], 1024 * 1024))
    for name, stype, addr, offset, size in headers:
        if stype == 8:  # SHT_NOBITS: nothing in the file
            continue
        label = names[name : names.find(b"\0", name)].decode("latin-1") if name < len(names) else ""
        exe.sections.setdefault(label, (offset, size))
        if addr and not exe.segments:
            exe.segments.append((addr, offset, size))


def _pe(exe: Executable) -> None:
    (lfanew,) = struct.unpack("<I", exe.read(0x3C, 4))
    if exe.read(lfanew, 4) != b"PE\0\0":
        return
    _, nsections, _, _, _, optsize, _ = struct.unpack("<HHIIIHH", exe.read(lfanew + 4, 20))
    opt = lfanew + 24
    magic = exe.read(opt, 2)
    if magic == b"\x0b\x02":  # PE32+
        (base,) = struct.unpack("<Q", exe.read(opt + 24, 8))
    else:
        (base,) = struct.unpack("<I", exe.read(opt + 28, 4))
    table = opt + optsize
    for i in range(min(nsections, 96)):
        raw = exe.read(table + 40 * i, 40)
        name, vsize, vaddr, rawsize, rawptr = struct.unpack_from("<8sIIII", raw)
        label = name.rstrip(b"\0").decode("latin-1")
        exe.sections.setdefault(label, (rawptr, min(vsize or rawsize, rawsize)))
        exe.segments.append((base + vaddr, rawptr, min(vsize or rawsize, rawsize)))


def _macho(exe: Executable, e: str, bits: int) -> None:
    exe.endian = e
    ncmds = struct.unpack(e + "I", exe.read(16, 4))[0]
    at = 32 if bits == 64 else 28
    for _ in range(min(ncmds, 4096)):
        cmd, size = struct.unpack(e + "II", exe.read(at, 8))
        if cmd in (0x19, 0x1):  # LC_SEGMENT_64, LC_SEGMENT
            wide = cmd == 0x19
            fmt = e + ("16sQQQQiiII" if wide else "16sIIIIiiII")
            body = exe.read(at + 8, struct.calcsize(fmt))
            _, vmaddr, _, fileoff, filesize, _, _, nsects, _ = struct.unpack(fmt, body)
            exe.segments.append((vmaddr, fileoff, filesize))
            sect_at = at + 8 + struct.calcsize(fmt)
            sfmt = e + ("16s16sQQI" if wide else "16s16sIII")
            step = 80 if wide else 68
            for j in range(min(nsects, 256)):
                sectname, _, _, ssize, soffset = struct.unpack(
                    sfmt, exe.read(sect_at + j * step, struct.calcsize(sfmt))
                )
                exe.sections.setdefault(sectname.rstrip(b"\0").decode("latin-1"), (soffset, ssize))
        if size < 8:
            return
        at += size
