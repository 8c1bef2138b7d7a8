"""Zip archives from visitors (.pt2, .keras, .npz masks): vetted once, read once, rebuilt fresh.

    members = read_zip(path, "model.pt2", ".pt2 program", allow=r"model/[\\w./-]+")
    write_zip(members, private_dir / "model.pt2")   # what the library is given, never the visitor's file

``read_zip`` refuses, each with a one-line ``PruningError``: bytes that are not a zip; a central
directory larger than ``max_members`` entries could need (checked before ``zipfile`` parses it);
duplicate member names, also names that differ only in case (``zipfile`` vets one copy, another
reader may take the other); names that are absolute, hold ``..``, ``.``, empty parts, backslashes
or control characters, or that ``allow`` rejects; more than ``max_members`` members; compression
other than stored or deflate; encrypted members; a member whose declared or actual size is over
``max_member``, all members over ``max_total``, or a member above ``ratio_above`` bytes that
unpacks to over ``max_ratio`` times its packed size (zip bombs); a member whose bytes start like a
zip, gzip, bzip2, xz, 7z or tar archive unless ``nested`` accepts its name.  Every member is read
with a bounded read, so a lying header cannot make it allocate more than ``max_member`` bytes.
"""

import re
import struct
import zipfile

from ...errors import PruningError, quote
from .common import MAX_BYTES, MAX_MEMBERS, MAX_RATIO, MAX_UNPACKED, RATIO_ABOVE, first_line

# magic bytes at the start of a member that is itself an archive (offset, bytes, kind)
ARCHIVE_MAGIC = [(0, b"PK\x03\x04", "zip"), (0, b"PK\x05\x06", "zip"), (0, b"PK\x07\x08", "zip"),
                 (0, b"\x1f\x8b", "gzip"), (0, b"BZh", "bzip2"), (0, b"\xfd7zXZ\x00", "xz"),
                 (0, b"7z\xbc\xaf\x27\x1c", "7z"), (257, b"ustar", "tar")]
DIRECTORY_ENTRY_BYTES = 1024  # the most central-directory bytes allowed per member (46 + name + extra)
MAX_NAME = 512
HEAD_BYTES = 4096  # what ``read_zip``'s ``head`` check sees of a member before the rest is read
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f\\]|^/|^[A-Za-z]:|(^|/)\.{1,2}(/|$)|//")
_EOCD, _EOCD64_LOCATOR, _EOCD64 = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"


def _rule(rule):
    """A predicate on member names from None (anything), a regex (full match) or a predicate."""
    if rule is None:
        return lambda name: True
    if callable(rule):
        return rule
    pattern = re.compile(rule)
    return lambda name: pattern.fullmatch(name) is not None


def _directory(f) -> tuple:
    """(entries, directory bytes) that the end record declares, read from the file's tail as
    ``zipfile`` reads it (the zip64 record wins where its locator is present); (0, 0) if none."""
    f.seek(0, 2)
    size = f.tell()
    f.seek(max(0, size - (22 + 65535 + 20 + 56)))
    tail = f.read()
    at = len(tail) - 22 if tail[-22:-18] == _EOCD else tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        return 0, 0
    entries, directory = struct.unpack("<HL", tail[at + 10:at + 16])
    if at >= 76 and tail[at - 20:at - 16] == _EOCD64_LOCATOR and tail[at - 76:at - 72] == _EOCD64:
        entries, directory = struct.unpack("<QQ", tail[at - 76 + 32:at - 76 + 48])
    return entries, directory


def _nested_kind(data: bytes):
    return next((kind for offset, magic, kind in ARCHIVE_MAGIC if data[offset:offset + len(magic)] == magic), None)


def _check_name(name: str, seen: dict, allowed, label: str, why: str) -> None:
    if len(name) > MAX_NAME or _BAD_NAME.search(name):
        raise PruningError(f"{label} contains the member {quote(name)}: absolute paths, '..' and odd names "
                           f"are not accepted")
    key = name.rstrip("/").casefold()
    if key in seen:
        same = "twice" if seen[key] == name else f"twice ({quote(seen[key])} and {quote(name)} differ only in case)"
        raise PruningError(f"{label} holds the member {quote(name)} {same}; duplicate names are not accepted")
    seen[key] = name
    if not name.endswith("/") and not allowed(name):
        raise PruningError(f"{label} contains {quote(name)}: {why}")


def _read_member(z, info, label: str, max_member: int, max_ratio, ratio_above: int, head=None) -> bytes:
    """The member's bytes, reading at most ``max_member + 1`` of them whatever its header says;
    ``head(name, first_bytes, declared_size)`` may refuse it from its first HEAD_BYTES first."""
    name = info.filename
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise PruningError(f"{label}: the member {quote(name)} uses a compression other than stored or deflate")
    if info.flag_bits & 0x1:
        raise PruningError(f"{label}: the member {quote(name)} is encrypted")
    if info.file_size > max_member:
        raise PruningError(f"{label}: the member {quote(name)} unpacks to more than {max_member / 2**20:.0f} MB")
    ratio = lambda n: max_ratio and n > ratio_above and n > max_ratio * max(info.compress_size, 1)  # noqa: E731
    if ratio(info.file_size):
        raise PruningError(f"{label}: the member {quote(name)} unpacks more than {max_ratio} times its packed size "
                           f"(a zip bomb?)")
    with z.open(info) as f:
        data = f.read(min(info.file_size, HEAD_BYTES))
        if head is not None:
            head(name, data, info.file_size)
        data += f.read(min(info.file_size, max_member) + 1 - len(data))
    if len(data) > max_member:
        raise PruningError(f"{label}: the member {quote(name)} unpacks to more than {max_member / 2**20:.0f} MB")
    if len(data) != info.file_size:
        raise PruningError(f"{label}: the member {quote(name)} holds {len(data)} bytes; its header says "
                           f"{info.file_size}")
    if ratio(len(data)):
        raise PruningError(f"{label}: the member {quote(name)} unpacks more than {max_ratio} times its packed size "
                           f"(a zip bomb?)")
    return data


def read_zip(source, label: str, what: str = "zip archive", *, allow=None, why: str | None = None,
             nested=(), max_members: int = MAX_MEMBERS, max_member: int = MAX_BYTES,
             max_total: int = MAX_UNPACKED, max_ratio: float | None = MAX_RATIO,
             ratio_above: int = RATIO_ABOVE, head=None) -> dict:
    """Vet the zip archive ``source`` (a path or a seekable binary file object) and return its
    members, name -> bytes, in archive order (directory entries left out).

    ``label`` starts every message (e.g. the file's name); ``what`` names the format in the
    message for bytes that are no zip ("cannot read <label>: not a valid <what> (<reason>)").
    ``allow`` and ``nested`` are rules on member names: None (any), a regex (full match) or a
    predicate; ``allow`` says which members may be there (``why`` ends the refusal), ``nested``
    which ones may hold bytes that look like an archive.  ``max_ratio=None`` skips the ratio test.
    ``head(name, first_bytes, declared_size)``, when given, sees each member's first HEAD_BYTES
    before the rest is read, and may refuse it (e.g. a file-format header that lies about its size).
    """
    allowed = _rule(allow)
    nested_ok = _rule(nested) if nested else (lambda name: False)
    why = why or f"not an accepted member of a {what}"
    opened = None
    try:
        if not hasattr(source, "read"):
            source = opened = open(source, "rb")
        f = source
        entries, directory = _directory(f)
        if entries > max_members or directory > max_members * DIRECTORY_ENTRY_BYTES:
            raise PruningError(f"{label} has more than {max_members} members")
        f.seek(0)
        members = {}
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            if len(infos) > max_members:
                raise PruningError(f"{label} has more than {max_members} members")
            seen = {}
            for info in infos:
                _check_name(info.filename, seen, allowed, label, why)
            if sum(i.file_size for i in infos) > max_total:
                raise PruningError(f"{label} unpacks to more than {max_total / 2**20:.0f} MB")
            total = 0
            for info in infos:
                if info.filename.endswith("/"):
                    continue
                data = _read_member(z, info, label, max_member, max_ratio, ratio_above, head)
                total += len(data)
                if total > max_total:
                    raise PruningError(f"{label} unpacks to more than {max_total / 2**20:.0f} MB")
                kind = _nested_kind(data)
                if kind and not nested_ok(info.filename):
                    raise PruningError(f"{label}: the member {quote(info.filename)} is itself a {kind} archive; "
                                       f"nested archives are not accepted")
                members[info.filename] = data
        return members
    except PruningError:
        raise
    except FileNotFoundError:
        raise PruningError(f"{label} not found") from None
    except Exception as exc:  # noqa: BLE001  (zipfile raises many kinds: BadZipFile, EOFError, zlib.error, ...)
        raise PruningError(f"cannot read {label}: not a valid {what} ({first_line(exc)})") from None
    finally:
        if opened is not None:
            opened.close()


def write_zip(members: dict, path) -> None:
    """Write ``members`` (name -> bytes, vetted by ``read_zip``) as a fresh, uncompressed zip."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
