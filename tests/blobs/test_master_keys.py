"""Master keys from configuration: parsing, file permissions, the active key, the generated development key,
and what a wrong or missing key does to reads and writes."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from esante.blobs import BlobConfigError, BlobKeyError, BlobStore, MasterKey, MasterKeyRing
from esante.blobs.master_keys import GENERATED_FILE, new_key_entry, parse_keys
from esante.config import Settings, load_settings
from tests.blobs.conftest import new_key, open_store


def _entry(kid: str, material: bytes | None = None) -> str:
    return f"{kid}:{base64.b64encode(material or os.urandom(32)).decode()}"


def _keys_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_entries_from_the_environment_and_a_file_are_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    material = os.urandom(32)
    keys_file = _keys_file(tmp_path / "master.keys", f"# old key\n{_entry('k1', material)}\n\n")
    monkeypatch.setenv("ESANTE_BLOB_KEYS", _entry("k2"))
    monkeypatch.setenv("ESANTE_BLOB_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("ESANTE_BLOB_ACTIVE_KEY", "k2")
    ring = MasterKeyRing.from_settings(load_settings(var_dir=tmp_path))
    assert sorted(ring.keys) == ["k1", "k2"] and ring.active_kid == "k2" and not ring.generated
    assert ring.keys["k1"].material == material
    assert "blob_keys" in ring.origin and str(keys_file) in ring.origin
    assert material.hex() not in repr(ring) and base64.b64encode(material).decode() not in repr(ring)


def test_a_single_key_is_the_active_one(tmp_path: Path) -> None:
    ring = MasterKeyRing.from_settings(Settings(var_dir=tmp_path, blob_keys=_entry("only")))
    assert ring.active_kid == "only"


def test_urlsafe_base64_and_commas(tmp_path: Path) -> None:
    material = bytes([0xFB, 0xFF] * 16)
    text = f"a:{base64.urlsafe_b64encode(material).decode()}, b:{base64.b64encode(material).decode()}"
    keys = parse_keys(text, "test")
    assert [k.material for k in keys] == [material, material]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1", "is not 'kid:base64key'"),
        ("bad kid:" + base64.b64encode(bytes(32)).decode(), "is not 'kid:base64key'"),
        ("k1:not*base64", "is not base64"),
        ("k1:" + base64.b64encode(bytes(16)).decode(), "16 bytes, an AES-256 key is 32"),
    ],
)
def test_bad_entries_are_refused_without_echoing_the_material(text: str, message: str) -> None:
    with pytest.raises(BlobConfigError, match=message) as caught:
        parse_keys(text, "blob_keys")
    material = text.partition(":")[2]
    assert not material or material not in str(caught.value)


def test_the_same_kid_with_two_materials_is_refused(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, blob_keys=f"{_entry('k1')},{_entry('k1')}")
    with pytest.raises(BlobConfigError, match="configured twice"):
        MasterKeyRing.from_settings(settings)


def test_several_keys_need_an_active_one_that_exists(tmp_path: Path) -> None:
    two = f"{_entry('k1')},{_entry('k2')}"
    with pytest.raises(BlobConfigError, match="set blob_active_key"):
        MasterKeyRing.from_settings(Settings(var_dir=tmp_path, blob_keys=two))
    with pytest.raises(BlobConfigError, match="'k3' is not among"):
        MasterKeyRing.from_settings(Settings(var_dir=tmp_path, blob_keys=two, blob_active_key="k3"))


def test_a_keys_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    keys_file = _keys_file(tmp_path / "master.keys", _entry("k1"), mode=0o644)
    with pytest.raises(BlobConfigError, match="chmod 600"):
        MasterKeyRing.from_settings(Settings(var_dir=tmp_path, blob_keys_file=keys_file))
    with pytest.raises(BlobConfigError, match="cannot be read"):
        MasterKeyRing.from_settings(Settings(var_dir=tmp_path, blob_keys_file=tmp_path / "missing.keys"))
    empty = _keys_file(tmp_path / "empty.keys", "# nothing\n")
    with pytest.raises(BlobConfigError, match="holds no key"):
        MasterKeyRing.from_settings(Settings(var_dir=tmp_path, blob_keys_file=empty))


def test_without_configuration_a_development_key_is_generated_once(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    ring = MasterKeyRing.from_settings(settings)
    path = tmp_path / "keys" / GENERATED_FILE
    assert ring.generated and str(path) in ring.origin
    assert path.stat().st_mode & 0o777 == 0o600
    again = MasterKeyRing.from_settings(settings)
    assert again.active.material == ring.active.material  # the same key at every start
    store = BlobStore.from_settings(settings)
    info = store.put(b"works out of the box")
    assert BlobStore.from_settings(settings).read_bytes(info.address) == b"works out of the box"
    assert not (tmp_path / "blobs" / GENERATED_FILE).exists()  # the key is not inside the blob folder


def test_new_key_entries_parse_back() -> None:
    entry = new_key_entry("k-2026")
    (key,) = parse_keys(entry, "test")
    assert key.kid == "k-2026" and len(key.material) == 32
    with pytest.raises(BlobConfigError):
        new_key_entry("bad kid")


def test_a_blob_whose_key_is_not_configured_cannot_be_read(root: Path, key1: MasterKey) -> None:
    info = open_store(root, key1).put(b"wrapped by k1")
    elsewhere = open_store(root, new_key("k2"))
    with pytest.raises(BlobKeyError, match="master key 'k1', which is not configured"):
        elsewhere.read_bytes(info.address)
    assert elsewhere.exists(info.address)


def test_the_wrong_material_under_the_right_kid_is_named_as_such(root: Path, key1: MasterKey) -> None:
    info = open_store(root, key1).put(b"wrapped by the real k1")
    impostor = open_store(root, new_key("k1"))
    with pytest.raises(BlobKeyError, match="configured master key 'k1' is not the key that wrapped it"):
        impostor.stat(info.address)
    with pytest.raises(BlobKeyError, match=r"store\.json"):  # nor can it compute addresses for new blobs
        impostor.put(b"new document")


def test_a_lost_store_record_is_not_silently_recreated(root: Path, key1: MasterKey) -> None:
    store = open_store(root, key1)
    info = store.put(b"an existing document")
    (root / "store.json").unlink()
    fresh = open_store(root, key1)
    with pytest.raises(BlobConfigError, match="restore it from a backup"):
        fresh.put(b"another document")
    assert fresh.read_bytes(info.address) == b"an existing document"  # reads do not need it


def test_segment_size_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(BlobConfigError, match="blob_segment_size"):
        BlobStore.from_settings(Settings(var_dir=tmp_path, blob_keys=_entry("k1"), blob_segment_size=100))
    store = BlobStore.from_settings(Settings(var_dir=tmp_path, blob_keys=_entry("k1"), blob_segment_size=8192))
    info = store.put(os.urandom(20_000))
    assert store.stat(info.address).size == 20_000
