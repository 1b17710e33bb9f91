import pytest

from tinytorch.data.datasets.packed import PackedSequence


def test_strings_and_bytes_round_trip():
    items = ["a", "", "héllo", "x" * 1000]
    packed = PackedSequence(items)
    assert len(packed) == 4
    assert list(packed) == items
    assert packed[-1] == "x" * 1000
    assert packed[1:3] == ["", "héllo"]
    assert PackedSequence([b"\x00\x01", b"z"])[0] == b"\x00\x01"


def test_no_python_objects_per_item():
    packed = PackedSequence(str(i) for i in range(1000))
    assert packed.data.dtype.kind == "u"
    assert packed.offsets.shape == (1001,)


def test_mixed_or_other_items_are_refused():
    with pytest.raises(TypeError, match="only str or only bytes"):
        PackedSequence(["a", b"b"])
    with pytest.raises(TypeError, match="only str or only bytes"):
        PackedSequence([1])
    with pytest.raises(IndexError):
        PackedSequence(["a"])[1]
