#!/usr/bin/env python3
"""List the imports of wasm core modules and fail if any is not from the crypto world's own imports
(`entropy`, `accel`).

Usage: tools/wasm-imports.py FILE.wasm...   (no wasm-tools needed)
"""
import sys

ALLOWED_MODULES = {
    f"joule:crypto/{interface}@{version}" for interface in ("entropy", "accel") for version in ("0.1.0", "0.1.1")
}


def leb(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def name(data, pos):
    n, pos = leb(data, pos)
    return data[pos:pos + n].decode(), pos + n


def sections(data):
    assert data[:4] == b"\0asm", "not a wasm module"
    assert data[4:8] == b"\1\0\0\0", "not a core module (a component?)"
    pos = 8
    while pos < len(data):
        sid = data[pos]
        size, pos = leb(data, pos + 1)
        yield sid, data[pos:pos + size]
        pos += size


def imports(payload):
    count, pos = leb(payload, 0)
    for _ in range(count):
        module, pos = name(payload, pos)
        field, pos = name(payload, pos)
        kind = payload[pos]
        pos += 1
        if kind == 0:  # func: type index
            _, pos = leb(payload, pos)
        elif kind == 1:  # table: reftype + limits
            pos += 1
            flags = payload[pos]; pos += 1
            _, pos = leb(payload, pos)
            if flags & 1:
                _, pos = leb(payload, pos)
        elif kind == 2:  # memory: limits
            flags = payload[pos]; pos += 1
            _, pos = leb(payload, pos)
            if flags & 1:
                _, pos = leb(payload, pos)
        elif kind == 3:  # global: valtype + mut
            pos += 2
        else:
            raise ValueError(f"unknown import kind {kind}")
        yield module, field, "func table memory global".split()[kind]


def main(paths):
    bad = 0
    for path in paths:
        data = open(path, "rb").read()
        found, custom = [], []
        for sid, payload in sections(data):
            if sid == 2:
                found = list(imports(payload))
            elif sid == 0:
                custom.append(name(payload, 0)[0])
        print(f"{path}: {len(data)} bytes, {len(found)} imports")
        for module, field, kind in found:
            ok = module in ALLOWED_MODULES
            bad += not ok
            print(f"  {'ok ' if ok else 'BAD'} {kind} {module} {field}")
        if not any(c.startswith("component-type") for c in custom):
            print("  BAD no component-type custom section (not built with wit-bindgen?)")
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
