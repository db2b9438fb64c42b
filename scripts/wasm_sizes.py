"""Which crates the code of a .wasm file comes from: code bytes per crate, from the function
sizes in the code section and the names in the `name` section (demangled roughly, by the
first path segment). `python3 wasm_sizes.py FILE [TOP]`."""
import re
import sys
from collections import Counter

from wasm_imports import leb, name  # noqa: E402  (same folder)


def sections(buf):
    at = 8
    while at < len(buf):
        sid, at = buf[at], at + 1
        size, at = leb(buf, at)
        yield sid, buf[at:at + size]
        at += size


def crate_of(symbol):
    # v0 mangling (_R...): the first crate root `C[s<hash>_]<len><name>` names the crate.
    if symbol.startswith("_R"):
        m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)", symbol)
        if m:
            return symbol[m.end():m.end() + int(m.group(1))]
    # Legacy mangling: _ZN<len><segment>... ; plain names fall back to the text.
    m = re.match(r"_ZN(\d+)", symbol)
    if m:
        n = int(m.group(1))
        seg = symbol[len(m.group(0)):len(m.group(0)) + n]
    else:
        seg = re.split(r"::|\$|\.", symbol.lstrip("_<"))[0]
    # `<T as Trait>` impls: `_$LT$crate..` (and `&mut`, `[` spelled out): count for `crate`.
    seg = re.sub(r"^(_?\$LT\$|\$RF\$|mut\$u20\$|\$u5b\$|dyn\$u20\$)+", "", seg)
    return seg.split("..")[0].split("$")[0] or symbol[:20]


def main(path, top):
    buf = open(path, "rb").read()
    imported = 0
    sizes, names = [], {}
    for sid, body in sections(buf):
        if sid == 2:
            count, p = leb(body, 0)
            for _ in range(count):
                _, p = name(body, p)
                _, p = name(body, p)
                kind, p = body[p], p + 1
                if kind == 0:
                    imported += 1
                p = skip_import(body, p, kind)
        elif sid == 10:
            count, p = leb(body, 0)
            for _ in range(count):
                size, p = leb(body, p)
                sizes.append(size)
                p += size
        elif sid == 0:
            title, p = name(body, 0)
            if title != "name":
                continue
            while p < len(body):
                sub, p = body[p], p + 1
                size, p = leb(body, p)
                end = p + size
                if sub == 1:
                    count, q = leb(body, p)
                    for _ in range(count):
                        index, q = leb(body, q)
                        text, q = name(body, q)
                        names[index] = text
                p = end
    by_crate = Counter()
    for i, size in enumerate(sizes):
        by_crate[crate_of(names.get(imported + i, "?unnamed"))] += size
    total = sum(sizes)
    print(f"code section: {total} bytes in {len(sizes)} functions")
    for crate, size in by_crate.most_common(top):
        print(f"{size:>9} {100 * size / total:5.1f}%  {crate}")


def skip_import(body, p, kind):
    if kind in (0, 4):
        return leb(body, p + (1 if kind == 4 else 0))[1]
    if kind == 1:
        p += 1
    if kind in (1, 2):
        flags, p = leb(body, p)
        p = leb(body, p)[1]
        return leb(body, p)[1] if flags & 1 else p
    return p + 2


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15)
