"""provenance.json: version, config and content hashes of inputs and outputs."""

from __future__ import annotations

import hashlib
import json

from behavior import __version__
from behavior.provenance import file_sha256, write_provenance


def test_hashes_and_fields(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"abc" * 1_000_000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = out_dir / "table.csv"
    result.write_text("a,b\n1,2\n")
    assert file_sha256(src, chunk_bytes=4096) == hashlib.sha256(src.read_bytes()).hexdigest()
    path = write_provenance(out_dir, command="test", config={"seed": 3}, inputs=[src], outputs=[result])
    record = json.loads(path.read_text())
    assert record["painbattery_version"] == __version__
    assert record["config"] == {"seed": 3}
    assert record["inputs"] == {str(src): hashlib.sha256(src.read_bytes()).hexdigest()}
    assert record["outputs"] == {"table.csv": hashlib.sha256(b"a,b\n1,2\n").hexdigest()}
    assert "numpy" in record["libraries"]
