"""Prints the import modules of a .wasm file and fails if any is `env` (an unresolved C or
Rust symbol that no JS glue provides): `python3 wasm_imports.py FILE`."""
import sys


def leb(buf, at):
    value = shift = 0
    while True:
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def name(buf, at):
    n, at = leb(buf, at)
    return buf[at:at + n].decode(), at + n


def imports(buf):
    assert buf[:4] == b"\0asm", "not a wasm module"
    at = 8
    while at < len(buf):
        section, at = buf[at], at + 1
        size, at = leb(buf, at)
        if section == 2:
            count, p = leb(buf, at)
            for _ in range(count):
                module, p = name(buf, p)
                field, p = name(buf, p)
                kind, p = buf[p], p + 1
                yield module, field
                # Skip the import's type: func index, table, memory, global or tag.
                if kind == 0 or kind == 4:
                    p = leb(buf, p + (1 if kind == 4 else 0))[1]
                elif kind == 1:
                    p += 1
                    flags, p = leb(buf, p)
                    p = leb(buf, p)[1]
                    if flags & 1:
                        p = leb(buf, p)[1]
                elif kind == 2:
                    flags, p = leb(buf, p)
                    p = leb(buf, p)[1]
                    if flags & 1:
                        p = leb(buf, p)[1]
                elif kind == 3:
                    p += 2
            return
        at += size


if __name__ == "__main__":
    modules = {}
    for module, field in imports(open(sys.argv[1], "rb").read()):
        modules.setdefault(module, []).append(field)
    for module, fields in sorted(modules.items()):
        print(f"imports from {module!r}: {len(fields)}")
    if "env" in modules:
        print(f"FAIL: imports from 'env': {modules['env']}")
        sys.exit(1)
