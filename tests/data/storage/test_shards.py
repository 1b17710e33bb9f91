"""The shard format: the manifest is checked in full before any number of it is used."""

import copy
import json
import pickle

import numpy as np
import pytest

from tinytorch.data.storage.shard_writer import ShardWriter
from tinytorch.data.storage.shards import (
    MANIFEST,
    CorruptShardError,
    Field,
    ShardError,
    check_layout,
    manifest_checksum,
    parse_manifest,
    read_manifest,
    shard_layout,
)


def write(tmp_path, samples, per_shard=3):
    writer = ShardWriter(tmp_path, samples_per_shard=per_shard, bytes_per_shard=None)
    for s in samples:
        writer.add(s)
    return writer.close()


@pytest.fixture
def raw(tmp_path):
    """A valid manifest (two shards: an image array, an int label, a bytes field) as JSON."""
    write(tmp_path, [(np.full((2, 3), i, np.uint8), i, bytes(range(i))) for i in range(5)])
    return json.loads((tmp_path / MANIFEST).read_text())


def test_missing_manifest_means_unfinished(tmp_path):
    with pytest.raises(ShardError, match="did not finish"):
        read_manifest(tmp_path)


def test_unknown_version_and_garbage(tmp_path, raw):
    raw["version"] = 99
    (tmp_path / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ShardError, match="format version 99"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(CorruptShardError, match="content is not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)  # deeper than the parser goes
    with pytest.raises(CorruptShardError, match="content is not valid JSON"):
        read_manifest(tmp_path)


def test_a_valid_manifest_parses(tmp_path, raw):
    m = parse_manifest(raw, tmp_path / MANIFEST)
    assert [s.samples for s in m.shards] == [3, 2]
    assert [f.kind for f in m.fields] == ["array", "array", "bytes"]
    assert all(isinstance(s.crc32, int) for s in m.shards)
    assert m.to_json()["shards"][1]["crc32"] == raw["shards"][1]["crc32"]


def shard0(r):
    return r["shards"][0]


# (what is changed, the field named in the error): every number, type and name of a manifest.
MUTATIONS = {
    "sample count +200": (lambda r: shard0(r).update(samples=shard0(r)["samples"] + 200), r"offsets\['1'\]"),
    "sample count -1": (lambda r: shard0(r).update(samples=-1), r"shards\[0\]\.samples is -1"),
    "sample count a float": (
        lambda r: shard0(r).update(samples=3.0),
        r"samples is float 3\.0, expected an int",
    ),
    "sample count a bool": (lambda r: shard0(r).update(samples=True), "samples is bool True"),
    "sample count a string": (lambda r: shard0(r).update(samples="3"), "samples is str '3'"),
    "offset past the end": (
        lambda r: shard0(r)["offsets"].update({"0": 10**6}),
        r"offsets\['0'\] is 1000000, expected 0",
    ),
    "offset negative": (lambda r: shard0(r)["offsets"].update({"0": -4096}), r"offsets\['0'\] is -4096"),
    "offset of values moved": (lambda r: shard0(r)["offsets"].update({"2.data": 64}), r"offsets\['2.data'\]"),
    "offset key missing": (
        lambda r: shard0(r)["offsets"].pop("1"),
        r"shards\[0\]\.offsets is \['0', '2', '2.data'\]",
    ),
    "offset key extra": (lambda r: shard0(r)["offsets"].update({"9": 0}), r"shards\[0\]\.offsets"),
    "larger shape": (lambda r: r["fields"][0].update(shape=[2, 30]), r"offsets\['1'\] is \d+, expected 192"),
    "negative shape": (lambda r: r["fields"][0].update(shape=[-2, 3]), r"fields\[0\]\.shape\[0\] is -2"),
    "too many dimensions": (lambda r: r["fields"][0].update(shape=[1] * 40), r"fields\[0\]\.shape"),
    "astronomical shape": (lambda r: r["fields"][0].update(shape=[2**40, 2**40]), "records of at most"),
    "wider dtype": (lambda r: r["fields"][0].update(dtype="<f8"), r"offsets\['1'\]"),
    "object dtype": (lambda r: r["fields"][0].update(dtype="|O"), r"fields\[0\]\.dtype is '\|O'"),
    "unicode dtype": (lambda r: r["fields"][0].update(dtype="<U4"), r"fields\[0\]\.dtype is '<U4'"),
    "not a dtype": (lambda r: r["fields"][0].update(dtype="banana"), "expected a numpy dtype"),
    "unknown kind": (lambda r: r["fields"][0].update(kind="tensor"), r"fields\[0\]\.kind is 'tensor'"),
    "bytes field with a shape": (lambda r: r["fields"][2].update(shape=[3]), r"fields\[2\]\.dtype and shape"),
    "field names off the structure": (lambda r: r["fields"][1].update(name="label"), r"fields\[\*\]\.name"),
    "unknown structure": (lambda r: r.update(structure="set"), "structure is 'set'"),
    "file outside: ..": (
        lambda r: shard0(r).update(file="../x"),
        r"shards\[0\]\.file is '\.\./x', expected a plain file name",
    ),
    "file outside: absolute": (
        lambda r: shard0(r).update(file="/etc/passwd"),
        r"shards\[0\]\.file is '/etc/passwd'",
    ),
    "file hidden": (lambda r: shard0(r).update(file=".shard-00000.tts.tmp"), r"shards\[0\]\.file"),
    "file twice": (
        lambda r: shard0(r).update(file=r["shards"][1]["file"]),
        "a different file for every shard",
    ),
    "size before the values start": (
        lambda r: shard0(r).update(bytes=64),
        r"shards\[0\] \(shard-00000\.tts\) bytes is 64",
    ),
    "total off": (lambda r: r.update(samples=6), "samples is 6, expected 5"),
    "sha256 not hex": (lambda r: shard0(r).update(sha256="xyz"), "64 lowercase hex digits"),
    "crc32 too large": (lambda r: shard0(r).update(crc32=2**32), r"crc32 is 4294967296"),
    "shards a dict": (lambda r: r.update(shards={"a": 1}), "shards is dict"),
    "no shards": (lambda r: r.update(shards=[]), "shards is list"),
    "a shard a list": (lambda r: r["shards"].__setitem__(0, [1, 2]), r"shards\[0\] is list"),
    "fields a string": (lambda r: r.update(fields="abc"), "fields is str"),
    "key missing": (lambda r: r.pop("structure"), "key 'structure' is missing"),
    "metadata a list": (lambda r: r.update(metadata=["cat"]), "metadata is list"),
    "the whole manifest a list": (lambda r: [r.pop(k) for k in list(r)], None),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_manifest_with_one_wrong_value_is_refused_naming_it(tmp_path, raw, name):
    mutate, message = MUTATIONS[name]
    bad = copy.deepcopy(raw)
    del bad["checksum"]  # as in a manifest edited by hand, or one written before checksums
    mutate(bad)
    if name == "the whole manifest a list":
        bad = [1, 2]
        message = "the manifest is list"
    with pytest.raises(CorruptShardError, match=message) as caught:
        parse_manifest(bad, tmp_path / MANIFEST)
    assert str(tmp_path / MANIFEST) in str(caught.value)
    assert "Rewrite the dataset" in str(caught.value)


def test_a_manifest_changed_after_writing_fails_its_checksum(tmp_path, raw):
    assert raw["checksum"] == manifest_checksum(raw)
    for change in (lambda r: r["fields"][0].update(shape=[3, 2]), lambda r: r.update(extra=1)):
        bad = copy.deepcopy(raw)
        change(bad)  # both agree with every other number: only the checksum sees them
        with pytest.raises(
            CorruptShardError, match="checksum is .*: the manifest was changed after it was written"
        ):
            parse_manifest(bad, tmp_path / MANIFEST)
    del bad["checksum"]
    parse_manifest(bad, tmp_path / MANIFEST)  # without one (older writers): the other checks only


def test_metadata_round_trips_and_is_covered_by_the_checksum(tmp_path):
    writer = ShardWriter(
        tmp_path, samples_per_shard=2, bytes_per_shard=None, metadata={"classes": ["a", "b"]}
    )
    writer.add((b"x", 1))
    written = writer.close()
    raw = json.loads((tmp_path / MANIFEST).read_text())
    assert raw["metadata"] == {"classes": ["a", "b"]}
    assert read_manifest(tmp_path).metadata == written.metadata == {"classes": ["a", "b"]}
    raw["metadata"]["classes"].reverse()  # relabelling every class: only the checksum sees it
    with pytest.raises(CorruptShardError, match="checksum is"):
        parse_manifest(raw, tmp_path / MANIFEST)


def test_a_manifest_without_metadata_is_written_as_before(tmp_path, raw):
    assert "metadata" not in raw  # older readers and checksums see the same keys as ever
    assert parse_manifest(raw, tmp_path / MANIFEST).metadata == {}


def test_corrupt_shard_error_is_a_shard_error_and_value_error_and_pickles():
    assert str(CorruptShardError("a message alone")) == "a message alone"  # as workers re-raise it
    e = CorruptShardError("/d/shard-00001.tts", "size", "100 bytes", "50 bytes")
    assert isinstance(e, ShardError)
    assert isinstance(e, ValueError)
    assert str(e) == "/d/shard-00001.tts: size is 50 bytes, expected 100 bytes. " + e.fix
    back = pickle.loads(pickle.dumps(e))  # worker errors travel pickled
    assert type(back) is CorruptShardError
    assert (back.path, back.field, back.expected, back.found, str(back)) == (
        e.path,
        e.field,
        e.expected,
        e.found,
        str(e),
    )


def test_the_layout_rule_is_what_the_writer_wrote(tmp_path, raw):
    m = parse_manifest(raw, tmp_path / MANIFEST)
    for k, info in enumerate(m.shards):
        lengths = {"2": sum(range(3)) if k == 0 else sum(range(3, 5))}
        assert shard_layout(m.fields, info.samples, lengths) == (info.offsets, info.nbytes)
        check_layout(tmp_path / MANIFEST, k, info, m.fields, lengths)  # exact: passes
        with pytest.raises(CorruptShardError, match=r"bytes is \d+, expected \d+"):
            check_layout(tmp_path / MANIFEST, k, info, m.fields, {"2": lengths["2"] + 64})


def test_layout_regions_start_on_64_byte_boundaries():
    fields = (Field("a", "array", "|u1", (3,)), Field("b", "bytes"), Field("c", "array", "<f8", ()))
    offsets, nbytes = shard_layout(fields, 5, {"b": 7})
    assert offsets == {"a": 0, "b": 64, "b.data": 128, "c": 192}
    assert nbytes == 256
