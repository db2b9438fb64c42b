"""Opens a tidewal log directory with pyarrow alone and prints what it finds as JSON.

Every WAL slot must open as an Arrow IPC stream and every generation as an Arrow IPC file;
data entries and generations must carry their tidewal metadata.
"""
import json
import pathlib
import sys

import pyarrow as pa

root = pathlib.Path(sys.argv[1])
out = {"wal_ids": [], "fences": 0, "generation_ids": [], "kinds": []}
for path in sorted((root / "wal").iterdir()):
    table = pa.ipc.open_stream(path.read_bytes()).read_all()
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    assert meta["tidewal.format"] == "1", meta
    assert int(meta["tidewal.position"]) == int(path.stem), (meta, path)
    out["kinds"].append(meta["tidewal.kind"])
    if meta["tidewal.kind"] == "fence":
        assert table.num_rows == 0
        out["fences"] += 1
    else:
        out["wal_ids"] += table.column("id").to_pylist()
for path in sorted((root / "gen").iterdir()):
    table = pa.ipc.open_file(path.read_bytes()).read_all()
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    assert meta["tidewal.kind"] == "generation", meta
    out["generation_ids"] += table.column("id").to_pylist()
print(json.dumps(out))
