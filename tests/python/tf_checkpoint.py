"""Writes TensorFlow checkpoints (the V2 tensor bundle format) byte for byte
as TensorFlow's Saver does, from the format's specification alone: the
LevelDB table format of the .index file (blocks of prefix-compressed keys
with restart points, a masked CRC-32C per block, block handles, the 48-byte
footer), the protobuf wire encoding of BundleHeaderProto and
BundleEntryProto, and OrderedCode slice keys.

It shares no code with varscope (which writes with LevelDB's table builder
and protobuf), so the tests can compare the two byte for byte and read what
this writes.

    write_checkpoint(prefix, [("w", w_array),
                              ("emb", [10, 4], [((0, 0), part0),
                                                ((5, 0), part1)])])
"""

import struct

import numpy as np

# TensorFlow's DataType numbers.
DTYPES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2,
          np.dtype(np.int32): 3, np.dtype(np.uint8): 4, np.dtype(np.int16): 5,
          np.dtype(np.int8): 6, np.dtype(np.int64): 9, np.dtype(np.bool_): 10,
          np.dtype(np.float16): 19}

BLOCK_SIZE = 262144  # TensorFlow's table::Options defaults
RESTART_INTERVAL = 16
TABLE_MAGIC = 0xdb4775248b80fb57


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# Protobuf wire format --------------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def shape_proto(dims):
    # TensorShapeProto: repeated Dim dim = 2; Dim: int64 size = 1.
    return b"".join(field_bytes(2, field_varint(1, d) if d else b"")
                    for d in dims)


def header_proto(num_shards):
    # BundleHeaderProto: num_shards = 1, endianness = 2 (LITTLE = 0, not
    # written), version = 3 (VersionDef: producer = 1 is 1).
    return field_varint(1, num_shards) + field_bytes(3, field_varint(1, 1))


def entry_proto(dtype, dims, shard_id=0, offset=0, size=0, crc=None,
                slices=()):
    out = field_varint(1, dtype) + field_bytes(2, shape_proto(dims))
    if shard_id:
        out += field_varint(3, shard_id)
    if offset:
        out += field_varint(4, offset)
    if size:
        out += field_varint(5, size)
    if crc is not None:
        out += varint(6 << 3 | 5) + struct.pack("<I", crc)
    for starts, lengths in slices:
        extents = b""
        for start, length in zip(starts, lengths):
            extent = (field_varint(1, start) if start else b"") + \
                field_varint(2, length)
            extents += field_bytes(1, extent)
        out += field_bytes(7, extents)
    return out


# OrderedCode slice keys ------------------------------------------------------

def ordered_unsigned(n):
    payload = n.to_bytes(8, "big").lstrip(b"\0")
    return bytes([len(payload)]) + payload


def ordered_string(s):
    return s.replace(b"\x00", b"\x00\xff").replace(b"\xff", b"\xff\x00")\
        + b"\x00\x01"


def ordered_signed(n):
    magnitude = ~n if n < 0 else n
    length = (magnitude.bit_length() + 7) // 7
    payload = bytearray((n & ((1 << 80) - 1)).to_bytes(10, "big")[-length:])
    header = (0xFFFF << (16 - length)) & 0xFFFF
    payload[0] ^= header >> 8
    if length > 1:
        payload[1] ^= header & 0xFF
    return bytes(payload)


def slice_key(name, starts, lengths):
    key = ordered_unsigned(0) + ordered_string(name.encode()) + \
        ordered_unsigned(len(starts))
    for start, length in zip(starts, lengths):
        key += ordered_signed(start) + ordered_signed(length)
    return key


# The LevelDB table format ----------------------------------------------------

class _Block:
    def __init__(self, restart_interval):
        self.interval = restart_interval
        self.buffer = bytearray()
        self.restarts = [0]
        self.count = 0
        self.last = b""

    def add(self, key, value):
        shared = 0
        if self.count < self.interval:
            while (shared < min(len(key), len(self.last)) and
                   key[shared] == self.last[shared]):
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.count = 0
        self.buffer += varint(shared) + varint(len(key) - shared) + \
            varint(len(value)) + key[shared:] + value
        self.last = key
        self.count += 1

    def size_estimate(self):
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def empty(self):
        return not self.buffer

    def finish(self):
        return bytes(self.buffer) + b"".join(
            struct.pack("<I", r) for r in self.restarts) + \
            struct.pack("<I", len(self.restarts))


def _shortest_separator(start, limit):
    n = 0
    while n < min(len(start), len(limit)) and start[n] == limit[n]:
        n += 1
    if n < min(len(start), len(limit)) and start[n] < 0xFF and \
            start[n] + 1 < limit[n]:
        return start[:n] + bytes([start[n] + 1])
    return start


def _short_successor(key):
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def table(entries, block_size=BLOCK_SIZE):
    """The bytes of a table of sorted (key, value) pairs, as TensorFlow's
    table builder writes it without compression."""
    out = bytearray()

    def write_block(block):
        contents = block.finish() + b"\0"  # block type 0: uncompressed
        handle = varint(len(out)) + varint(len(contents) - 1)
        out.extend(contents + struct.pack("<I", masked_crc32c(contents)))
        return handle

    data = _Block(RESTART_INTERVAL)
    index = _Block(1)
    pending, last = None, b""
    for n, (key, value) in enumerate(entries):
        if n and len(key) + len(value) >= 2 * block_size and \
                not data.empty():
            pending = write_block(data)
            data = _Block(RESTART_INTERVAL)
        if pending is not None:
            index.add(_shortest_separator(last, key), pending)
            pending = None
        last = key
        data.add(key, value)
        if data.size_estimate() >= block_size:
            pending = write_block(data)
            data = _Block(RESTART_INTERVAL)
    if not data.empty():
        pending = write_block(data)
    metaindex = write_block(_Block(RESTART_INTERVAL))
    if pending is not None:
        index.add(_short_successor(last), pending)
    index_handle = write_block(index)
    footer = metaindex + index_handle
    footer += b"\0" * (40 - len(footer)) + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out + footer)


# Checkpoints -----------------------------------------------------------------

def write_checkpoint(prefix, tensors, num_shards=1, shard_of=None,
                     block_size=BLOCK_SIZE):
    """Writes checkpoint `prefix` as TensorFlow does.

    tensors: in the order their bytes are written, (name, array) for a
    tensor saved whole or (name, full_shape, [(start, array), ...]) for one
    saved in slices (a partitioned variable). shard_of(name) picks the data
    file of a tensor (default 0); num_shards data files are written, as a
    sharded save on several parameter servers produces. Returns
    {name: bytes of each file}.
    """
    data = [bytearray() for _ in range(num_shards)]
    index = {}

    def add(key, name, array):
        shard = shard_of(name) if shard_of else 0
        raw = np.ascontiguousarray(array).astype(
            array.dtype.newbyteorder("<")).tobytes()
        index[key] = entry_proto(DTYPES[array.dtype], array.shape, shard,
                                 len(data[shard]), len(raw),
                                 masked_crc32c(raw))
        data[shard] += raw

    for item in tensors:
        if len(item) == 2:
            add(item[0].encode(), item[0], np.asarray(item[1]))
            continue
        name, full_shape, parts = item
        slices = []
        for start, array in parts:
            array = np.asarray(array)
            slices.append((start, array.shape))
            add(slice_key(name, start, array.shape), name, array)
        index[name.encode()] = entry_proto(DTYPES[array.dtype], full_shape,
                                           slices=slices)
    files = {"%s.data-%05d-of-%05d" % (prefix, i, num_shards): bytes(d)
             for i, d in enumerate(data)}
    files[prefix + ".index"] = table(
        [(b"", header_proto(num_shards))] + sorted(index.items()),
        block_size)
    for path, contents in files.items():
        with open(path, "wb") as f:
            f.write(contents)
    return files


def write_state(directory, prefixes):
    """The `checkpoint` file naming `prefixes` (relative paths), the last
    one the latest, as TensorFlow writes it."""
    lines = ['model_checkpoint_path: "%s"' % prefixes[-1]] + [
        'all_model_checkpoint_paths: "%s"' % p for p in prefixes]
    with open("%s/checkpoint" % directory, "w") as f:
        f.write("\n".join(lines) + "\n")
