"""A seeded generator of malformed PNG and JPEG files, structure-aware.

Random bytes rarely get past a decoder's signature check; these mutate the structure a
decoder walks: PNG chunks (lengths, CRCs, order, IHDR fields, iCCP and eXIf chunks,
truncated zlib streams) and JPEG segments (APP1 EXIF blocks, frame headers, truncation),
and EXIF's TIFF directory (cut-off headers, tags stored with the wrong type or count,
offsets out of range) in both. ``corpus(count, seed)`` yields (name, bytes) pairs.
"""

import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator

from PIL import Image, ImageDraw

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# EXIF tags that broke decoders before: Orientation, Make, XResolution, ResolutionUnit,
# and the pointers to the EXIF and GPS directories.
TAGS = (0x0112, 0x010F, 0x011A, 0x0128, 0x8769, 0x8825)
TIFF_TYPES = range(0, 14)  # 1..12 are TIFF's; 0 and 13 are not


def _base_image(rng: random.Random) -> Image.Image:
    mode = rng.choice(["L", "RGB", "RGBA", "P", "LA", "1"])
    size = (rng.randint(1, 64), rng.randint(1, 64))
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).line((0, 0, size[0], size[1]), fill=0, width=3)
    if mode == "P":
        converted = image.convert("P")
        converted.info["transparency"] = 0
        return converted
    return image.convert(mode)


def _png(rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    _base_image(rng).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg(rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    _base_image(rng).convert("RGB" if rng.random() < 0.5 else "L").save(buffer, "JPEG")
    return buffer.getvalue()


def exif_block(rng: random.Random) -> bytes:
    """A TIFF directory as EXIF carries it, with wrong types, counts and offsets."""
    endian = rng.choice(["<", ">"])
    header = (b"II*\x00" if endian == "<" else b"MM\x00*") + struct.pack(endian + "I", 8)
    entries = []
    for _ in range(rng.randint(0, 6)):
        tag, kind = rng.choice(TAGS), rng.choice(TIFF_TYPES)
        count = rng.choice([0, 1, 2, 4, 0xFFFF, 0xFFFFFFFF])
        value = rng.choice([0, 1, 3, 6, 8, 0xFFFF, 0x7FFFFFFF, rng.getrandbits(32)])
        entries.append(struct.pack(endian + "HHII", tag, kind, count, value))
    directory = struct.pack(endian + "H", len(entries) + rng.choice([0, 0, 1, 100]))
    block = header + directory + b"".join(entries) + struct.pack(endian + "I", 0)
    cut = rng.choice([len(block), len(block), rng.randint(0, len(block))])
    return block[:cut]


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        chunks.append((kind, data[offset + 8:offset + 8 + length]))
        offset += 12 + length
    return chunks


def _chunk(kind: bytes, body: bytes, crc: bool = True) -> bytes:
    checksum = zlib.crc32(kind + body) if crc else 0xDEADBEEF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", checksum)


def _mutate_png(data: bytes, rng: random.Random) -> bytes:
    chunks = _chunks(data)
    if len(chunks) < 2 or b"IDAT" not in [kind for kind, _ in chunks]:
        return data + rng.randbytes(rng.randint(0, 16))  # already broken past repair
    mutation = rng.randrange(8)
    if mutation == 0:  # an eXIf chunk with a malformed directory, before or after IDAT
        chunks.insert(rng.randint(1, len(chunks)), (b"eXIf", exif_block(rng)))
    elif mutation == 1:  # an iCCP chunk (after the image data, or garbled)
        profile = b"icc\x00\x00" + rng.choice([zlib.compress(b"x" * 50), b"garbage", b""])
        chunks.insert(len(chunks) - 1, (b"iCCP", profile))
    elif mutation == 2:  # IHDR fields out of range
        width, height = rng.choice([(0, 1), (1, 0), (2**31 - 1, 1), (6300, 6300),
                                    (65535, 65535), (1, 2**31 - 1)])
        bits, color = rng.choice([(8, 0), (16, 6), (3, 2), (8, 7), (1, 3), (8, 3)])
        chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", width, height, bits, color, 0, 0,
                                          rng.choice([0, 1, 9])))
    elif mutation == 3:  # IDAT's zlib stream cut short or corrupted
        index = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
        body = chunks[index][1]
        chunks[index] = (b"IDAT", body[:rng.randint(0, len(body))] + rng.randbytes(
            rng.randint(0, 8)))
    elif mutation == 4:  # chunks reordered, duplicated or dropped
        middle = chunks[1:-1]
        rng.shuffle(middle)
        chunks = [chunks[0], *middle, *rng.choice([[chunks[-1]], [], [chunks[0]]])]
    elif mutation == 5:  # a tRNS or PLTE of the wrong size
        chunks.insert(1, (rng.choice([b"tRNS", b"PLTE"]), rng.randbytes(rng.randint(0, 900))))
    body = PNG_SIGNATURE + b"".join(
        _chunk(kind, payload, crc=mutation != 6 or rng.random() < 0.5)
        for kind, payload in chunks)
    if mutation == 7:  # truncated anywhere
        body = body[:rng.randint(len(PNG_SIGNATURE), len(body))]
    return body


def _mutate_jpeg(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 16:  # already cut to pieces by an earlier mutation
        return data + rng.randbytes(rng.randint(0, 16))
    mutation = rng.randrange(5)
    if mutation == 0:  # an APP1 EXIF segment with a malformed directory
        payload = b"Exif\x00\x00" + exif_block(rng)
        segment = b"\xff\xe1" + struct.pack(">H", min(len(payload) + 2, 0xFFFF)) + payload
        return data[:2] + segment + data[2:]
    if mutation == 1:  # truncated at a random point
        return data[:rng.randint(2, len(data))]
    if mutation == 2:  # frame header with zero or huge dimensions
        index = data.find(b"\xff\xc0")
        if index > 0:
            dims = struct.pack(">HH", *rng.choice([(0, 10), (65535, 65535), (10, 0)]))
            return data[:index + 5] + dims + data[index + 9:]
        return data
    if mutation == 3:  # bytes flipped inside the entropy-coded data
        corrupted = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            corrupted[rng.randint(len(data) // 2, len(data) - 3)] = rng.getrandbits(8)
        return bytes(corrupted)
    return data[:2] + b"\xff\xe1\xff\xff" + rng.randbytes(rng.randint(0, 64)) + data[2:]


MUTATORS: list[tuple[str, Callable[[random.Random], bytes],
                     Callable[[bytes, random.Random], bytes]]] = [
    ("png", _png, _mutate_png), ("jpeg", _jpeg, _mutate_jpeg)]


def corpus(count: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``count`` malformed files (a fixed sequence for a seed): (name, bytes)."""
    rng = random.Random(seed)
    for index in range(count):
        kind, make, mutate = MUTATORS[index % len(MUTATORS)]
        data = make(rng)
        for _ in range(rng.choice([1, 1, 2])):
            data = mutate(data, rng)
        yield f"{kind}-{index}", data
