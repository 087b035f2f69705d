#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small valid files, and one
file for each case of RELIABILITY.md section A that the target's loader can meet. Deterministic:
run it again and the same bytes come out (gzip with mtime 0, fixed seeds), except in the
checkpoints, which record how long each epoch took.

    fuzz/make_corpus.py [--cli build/test/backprop]

The model_load and checkpoint_load seeds are files the CLI itself writes (tiny networks trained
on tiny CSV files), so --cli must name a built backprop binary. Inputs libFuzzer found later are merged into
the same folders by fuzz/run.sh --merge; this script never deletes those.
"""

import argparse
import gzip
import os
import struct
import subprocess
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

U8, I8, I16, I32, F32, F64 = 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E
FMT = {U8: ">B", I8: ">b", I16: ">h", I32: ">i", F32: ">f", F64: ">d"}


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx(type_code, dims, values=None):
    out = bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    if values is None:
        n = 1
        for d in dims:
            n *= d
        values = [(i * 7) % 100 for i in range(n)]
    return out + b"".join(struct.pack(FMT[type_code], v) for v in values)


def gzip_member(data, flags=0, extra=b"", name=b"", comment=b""):
    """A gzip member written field by field, for the header flags gzip.compress never sets."""
    head = bytes([0x1F, 0x8B, 8, flags, 0, 0, 0, 0, 0, 3])
    if flags & 4:
        head += struct.pack("<H", len(extra)) + extra
    if flags & 8:
        head += name + b"\0"
    if flags & 16:
        head += comment + b"\0"
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    return head + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def idx_corpus():
    images = idx(U8, [3, 2, 2])
    labels = idx(U8, [3], [0, 2, 1])
    good = {
        "u8_vector": idx(U8, [5]),
        "u8_images": images,
        "i8": idx(I8, [2, 2], [-128, 127, 0, -1]),
        "i16": idx(I16, [2, 3], [-32768, 32767, 1, -1, 0, 5]),
        "i32": idx(I32, [2, 1], [-(2**31), 2**31 - 1]),
        "f32": idx(F32, [2, 2], [0.5, -1.25, 3e38, 1e-40]),
        "f64": idx(F64, [1, 2, 2], [0.1, -2.5, 1e-300, 3.4e38]),
        "gzip": gz(images),
    }
    bad = {
        "a01_empty": b"",
        "a02_three_bytes": b"\0\0\x08",
        "a03_zip_magic": b"PK\x03\x04\0\0",
        "a04_byte_swapped": bytes([3, 8, 0, 0]) + images[4:],
        "a05_type_0a": bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 0]),
        "a05_type_ff": bytes([0, 0, 0xFF, 1, 0, 0, 0, 1, 0]),
        "a06_ndims_0": bytes([0, 0, 8, 0]),
        "a07_header_cut_in_dims": bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0]),
        "a08_zero_dimension": idx(U8, [5, 0, 3], []),
        "a09_dimension_2p31": idx(U8, [2**31, 1], []),
        "a10_count_overflows": idx(F64, [0xFFFFFFFF] * 3, []),
        "a10_bytes_overflow": idx(F64, [0xFFFFFFFF] * 2, []),
        "a11_truncated_payload": images[:-1],
        "a11_2p40_declared": idx(U8, [1 << 20, 1 << 20], []) + b"\1" * 64,
        "a12_trailing_bytes": images + b"xyz",
    }
    for name, data in {**good, **bad}.items():
        write("idx", "m0_" + name, b"\x00" + data)
    write("idx", "m1_images", b"\x01" + images)
    write("idx", "m1_f32_images", b"\x01" + idx(F32, [2, 2], [0.5, 1.5, -2, 0]))
    write("idx", "m1_a06_images_1d", b"\x01" + idx(U8, [6]))
    write("idx", "m1_a17_nan", b"\x01" + idx(F32, [2, 2], [1, float("nan"), 2, 3]))
    write("idx", "m1_a17_inf_f64", b"\x01" + idx(F64, [2, 1], [1, float("inf")]))
    write("idx", "m1_a17_f64_beyond_float", b"\x01" + idx(F64, [2, 1], [1, 1e300]))
    write("idx", "m1_gzip_images", b"\x01" + gz(images))
    pair = lambda imgs, labs: b"\x02" + imgs + b"LBLS" + labs
    write("idx", "m2_pair", pair(images, labels))
    write("idx", "m2_pair_i32_labels", pair(images, idx(I32, [3], [1, 0, 70])))
    write("idx", "m2_pair_gzip", pair(gz(images), gz(labels)))
    write("idx", "m2_a06_labels_2d", pair(images, idx(U8, [3, 1], [0, 1, 2])))
    write("idx", "m2_a13_float_labels", pair(images, idx(F32, [3], [0, 1, 2])))
    write("idx", "m2_a14_negative_label", pair(images, idx(I8, [3], [0, -1, 2])))
    write("idx", "m2_a14_label_over_max_classes", pair(images, idx(I32, [3], [0, 70000, 2])))
    write("idx", "m2_a15_count_differs", pair(images, idx(U8, [2], [0, 1])))


def idx_gz_corpus():
    images = idx(U8, [3, 2, 2])
    member = gz(images)
    write("idx_gz", "one_member", member)
    write("idx_gz", "f32", gz(idx(F32, [2, 2], [0.5, 1.5, -2, 0])))
    write("idx_gz", "a27_two_members", gz(images[:7]) + gz(images[7:]))
    write("idx_gz", "a27_empty_member_first", gz(b"") + member)
    write("idx_gz", "a29_fextra", gzip_member(images, flags=4, extra=b"AB\x02\x00xy"))
    write("idx_gz", "a29_fname_fcomment", gzip_member(images, flags=8 | 16, name=b"f", comment=b"c"))
    write("idx_gz", "a29_unterminated_fname", bytes([0x1F, 0x8B, 8, 8, 0, 0, 0, 0, 0, 3]) + b"n" * 64)
    write("idx_gz", "a21_truncated", member[: len(member) // 2])
    write("idx_gz", "a21_cut_trailer", member[:-3])
    corrupt = bytearray(member)
    corrupt[10] = 0xFF
    write("idx_gz", "a22_corrupt_deflate", bytes(corrupt))
    crc = bytearray(member)
    crc[-8] ^= 1
    write("idx_gz", "a23_crc_mismatch", bytes(crc))
    isize = bytearray(member)
    isize[-1] ^= 1
    write("idx_gz", "a24_isize_mismatch", bytes(isize))
    write("idx_gz", "a25_bomb", gz(idx(U8, [1024], [0] * 1024) + b"\0" * 200000))
    write("idx_gz", "a26_tiny_gz_huge_dims", gz(idx(U8, [1 << 20, 1 << 20], []) + b"\1" * 100))
    write("idx_gz", "a28_trailing_garbage", member + b"GARB")
    write("idx_gz", "a28_trailing_lone_1f", member + b"\x1f")
    write("idx_gz", "a30_gzip_of_bad_idx", gz(bytes([0, 0, 0x0A, 1])))
    write("idx_gz", "gzip_of_gzip", gz(member))


def csv_corpus():
    # Two option bytes (fuzz_csv.cpp), then the text. 0x00 0x00: auto header, classify, last
    # column is the label; 0x04: regress; 0x08: no labels (predict); 0x10: label column "0".
    seeds = {
        "headed": (0x00, 0x00, "a,b,label\n1,2,x\n3,4,y\n"),
        "headerless_int_labels": (0x02, 0x00, "1,2,3\n4,5,10\n7,8,9\n"),
        "quotes_crlf_bom": (0x00, 0x00, '\ufeffa,"b, c",label\r\n1,"2",x\r\n"3","4","y ""q"""\r\n'),
        "quoted_newline": (0x00, 0x00, 'a,b,label\n1,2,"x\ny"\n3,4,z'),
        "regress_two_targets": (0x04 | 0x40, 0x00, "a,b,y1,y2\n1,2,3,4\n5,6,7,8\n"),
        "predict_features": (0x08, 0x02, "a,b\n1,2\n3,4\n"),
        "eval_by_name": (0x30, 0x03, "id,b,a,label\nr1,2,1,0\nr2,4,3,x\n"),
        "number_grammar": (0x00, 0x00, "a,b,label\n+3.5,.5,x\n5.,1E-3,y\n 7 ,-0,z\n1e-50,00012,x\n"),
        "label_index_0": (0x10, 0x00, "label,a\nx,1\ny,2\n"),
        "label_negative_index": (0x20, 0x00, "a,label,b\n1,x,2\n3,y,4\n"),
        "classes_given": (0x00, 0x01, "a,b,label\n1,2,0\n3,4,x\n"),
        "a31_empty": (0x00, 0x00, ""),
        "a31_header_only": (0x00, 0x00, "a,b,label\n"),
        "a32_ragged": (0x00, 0x00, "a,b,c\n1,2,x\n3,4\n"),
        "a33_not_a_number": (0x00, 0x00, "a,b,c\n1,abc,x\n1.2.3,--1,y\n"),
        "a34_decimal_comma": (0x00, 0x00, "a,b,label\n0.5,1,x\n0,5,1,y\n"),
        "a35_non_finite": (0x00, 0x00, "a,b,c\nnan,inf,x\n-inf,1e39,y\n0x1p3,infinity,z\n"),
        "a36_bad_labels": (0x00, 0x01, "a,b,c\n1,2,3.5\n3,4,-1\n5,6,\n"),
        "a37_unterminated_quote": (0x00, 0x00, 'a,b,c\n1,2,"abc\n5,6,x\n'),
        "a37_stray_quote": (0x00, 0x00, 'a,b,c\n1,4"5,x\n1,"4"5,y\n'),
        "a38_nul": (0x00, 0x00, "a,b,c\n1,4\0,x\n"),
        "a38_bad_utf8_header": (0x00, 0x00, "a,\xc3\x28,label\n1,2,x\n"),
        "a39_long_line": (0x00, 0x10, "a,b,c\n" + "1" * 100 + ",2,x\n"),
        "a40_no_header_with_names": (0x32, 0x00, "a,b,label\n1,2,x\n"),
        "a40_trailing_delimiter": (0x00, 0x00, "a,b,label\n1,2,x,\n"),
        "too_many_classes": (0x00, 0x20, "a,label\n1,a\n2,b\n3,c\n4,d\n"),
        "duplicate_header": (0x00, 0x00, "a,b,a,label\n1,2,3,x\n"),
    }
    for name, (a, b, text) in seeds.items():
        data = text.encode("utf-8", "surrogateescape") if "\xc3" not in text else text.encode("latin-1")
        write("csv", name, bytes([a, b]) + data)


def safetensors_file(header, data=b"", pad=True):
    h = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_corpus():
    def entry(dtype, shape, begin, end):
        return '{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}' % (dtype, shape, begin, end)

    f32x2 = entry("F32", "[2]", 0, 8)
    seeds = {
        "one_tensor": safetensors_file('{"t":%s}' % f32x2, b"\0" * 8),
        "metadata_and_tensors": safetensors_file(
            '{"__metadata__":{"format":"pt","k":"v"},"a":%s,"b":%s}'
            % (entry("F64", "[1]", 0, 8), entry("I32", "[2,2]", 8, 24)),
            bytes(range(24)),
        ),
        "scalar_and_empty": safetensors_file(
            '{"s":%s,"e":%s}' % (entry("U8", "[]", 0, 1), entry("F16", "[0,3]", 1, 1)), b"\7"
        ),
        "every_dtype": safetensors_file(
            "{"
            + ",".join(
                '"%s":%s' % (d.lower() + "_t", entry(d, "[1]", 8 * i, 8 * i + s))
                + (',"%s_pad":%s' % (d.lower(), entry("U8", "[%d]" % (8 - s), 8 * i + s, 8 * i + 8)) if s < 8 else "")
                for i, (d, s) in enumerate(
                    [("BOOL", 1), ("U8", 1), ("I8", 1), ("F8_E5M2", 1), ("F8_E4M3", 1), ("I16", 2),
                     ("U16", 2), ("F16", 2), ("BF16", 2), ("I32", 4), ("U32", 4), ("F32", 4),
                     ("I64", 8), ("U64", 8), ("F64", 8)]
                )
            )
            + "}",
            b"\0" * 120,
        ),
        "whitespace_around": safetensors_file(' \n\t{"t":%s} \r\n' % f32x2, b"\0" * 8),
        "a41_seven_bytes": b"\0" * 7,
        "a42_n_max": struct.pack("<Q", 2**64 - 1) + b" " * 8,
        "a42_n_past_end": struct.pack("<Q", 9) + b" " * 8,
        "a43_bad_utf8": safetensors_file(b'{"\xff":{}}'),
        "a44_array": safetensors_file("[]"),
        "a44_trailing": safetensors_file("{} x"),
        "a44_nul": safetensors_file(b"{}\0junk"),
        "a45_deep": safetensors_file("[" * 64 + "]" * 64),
        "a45_metadata_number": safetensors_file('{"__metadata__":{"a":1}}'),
        "a46_duplicate_tensor": safetensors_file('{"a":%s,"a":%s}' % (f32x2, f32x2), b"\0" * 8),
        "a47_unknown_key": safetensors_file('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}', b"\0" * 8),
        "a47_missing_shape": safetensors_file('{"t":{"dtype":"F32","data_offsets":[0,8]}}', b"\0" * 8),
        "a48_lowercase_dtype": safetensors_file('{"t":%s}' % entry("f32", "[2]", 0, 8), b"\0" * 8),
        "a48_c64": safetensors_file('{"t":%s}' % entry("C64", "[1]", 0, 8), b"\0" * 8),
        "a49_negative_dim": safetensors_file('{"t":%s}' % entry("F32", "[-1]", 0, 0)),
        "a49_count_overflow": safetensors_file('{"t":%s}' % entry("U8", "[4294967296,4294967296]", 0, 0)),
        "a49_2p40_elements": safetensors_file('{"t":%s}' % entry("F32", "[1048576,1048576]", 0, 4 << 40)),
        "a50_end_before_begin": safetensors_file('{"t":%s}' % entry("F32", "[0]", 8, 0), b"\0" * 8),
        "a51_overlap": safetensors_file('{"a":%s,"b":%s}' % (f32x2, f32x2), b"\0" * 8),
        "a52_gap": safetensors_file('{"a":%s,"b":%s}' % (f32x2, entry("F32", "[2]", 12, 20)), b"\0" * 20),
        "a53_size_mismatch": safetensors_file('{"t":%s}' % entry("F32", "[2]", 0, 4), b"\0" * 4),
        "a54_truncated": safetensors_file('{"t":%s}' % f32x2, b"\0" * 4),
        "a54_appended": safetensors_file('{"t":%s}' % f32x2, b"\0" * 12),
        "a55_tensor_named_metadata": safetensors_file('{"__metadata__":%s}' % f32x2, b"\0" * 8),
        "a60_control_in_name": safetensors_file('{"a\\nb":%s}' % f32x2, b"\0" * 8),
        "a60_long_name": safetensors_file('{"%s":%s}' % ("n" * 1025, f32x2), b"\0" * 8),
    }
    for name, data in seeds.items():
        write("safetensors_header", name, data)


def model_corpus(cli):
    with tempfile.TemporaryDirectory() as tmp:
        blobs = os.path.join(tmp, "blobs.csv")
        with open(blobs, "w") as f:
            f.write("a,b,c,label\n")
            for i in range(24):
                f.write("%d,%d,%d,%s\n" % (i % 5, (i * 3) % 7, i % 2, "xyz"[i % 3]))
        reg = os.path.join(tmp, "reg.csv")
        with open(reg, "w") as f:
            f.write("a,b,y1,y2\n")
            for i in range(24):
                f.write("%d,%d,%d,%d\n" % (i % 5, i % 3, i % 4, i % 6))
        runs = {
            "classify_sigmoid": [blobs, "--hidden", "3"],
            "classify_relu_two_hidden": [blobs, "--hidden", "3,2", "--activation", "relu"],
            "classify_quadratic_sigmoid": [blobs, "--hidden", "2", "--loss", "quadratic", "--activation", "tanh"],
            "regress_leaky": [reg, "--task", "regress", "--label-column", "y1,y2", "--hidden", "2",
                              "--activation", "leaky-relu"],
        }
        for name, args in runs.items():
            out = os.path.join(tmp, name + ".safetensors")
            subprocess.run([cli, "train", "--train"] + args + ["--epochs", "1", "--threads", "1",
                           "--quiet", "--save", out], check=True, stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                write("model_load", name, f.read())
    write("model_load", "a59_zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00archive/data.pkl")
    write("model_load", "a59_pickle", bytes([0x80, 0x02, 0x7D, 0x71, 0x00, 0x58, 0x01, 0, 0, 0, 0x77, 0x2E]))


def read_st(data):
    """A safetensors file as (metadata, [(name, dtype, shape, bytes)]) in data order."""
    import json
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return meta, [(k, v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
                  for k, v in tensors]


def write_st(meta, tensors):
    import json
    header, body = {"__metadata__": meta}, b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    return safetensors_file(json.dumps(header, separators=(",", ":")), body)


def checkpoint_corpus(cli):
    """Checkpoints the CLI writes (every optimizer, mid-epoch and epoch-end, with best weights),
    and one per case A.61-A.69 made from one of them. Their checksums are left as they are:
    fuzz_checkpoint_load reseals every input, so the cases reach the checks behind it."""
    import json
    with tempfile.TemporaryDirectory() as tmp:
        blobs = os.path.join(tmp, "blobs.csv")
        with open(blobs, "w") as f:
            f.write("a,b,c,label\n")
            for i in range(24):
                f.write("%d,%d,%d,%s\n" % (i % 5, (i * 3) % 7, i % 2, "xyz"[i % 3]))
        reg = os.path.join(tmp, "reg.csv")
        with open(reg, "w") as f:
            f.write("a,b,y1,y2\n")
            for i in range(24):
                f.write("%d,%d,%d,%d\n" % (i % 5, i % 3, i % 4, i % 6))
        runs = {
            "sgd_epoch_end": [blobs, "--hidden", "3"],
            "momentum_dropout": [blobs, "--hidden", "3,2", "--optimizer", "momentum", "--dropout", "0.2"],
            "nesterov_relu": [blobs, "--hidden", "2", "--optimizer", "nesterov", "--activation", "relu"],
            "adam_best_weights": [blobs, "--hidden", "3", "--optimizer", "adam", "--val-split", "0.25",
                                  "--patience", "3", "--schedule", "plateau"],
            "adamw_mid_epoch": [blobs, "--hidden", "2", "--optimizer", "adamw", "--batch-size", "4",
                                "--checkpoint-minutes", "0.000001"],
            "rmsprop_regress": [reg, "--task", "regress", "--label-column", "y1,y2", "--hidden", "2",
                                "--optimizer", "rmsprop", "--clip-norm", "1"],
            "irprop_full_batch": [blobs, "--hidden", "2", "--optimizer", "irprop", "--batch-size", "24",
                                  "--label-smoothing", "0.1"],
        }
        seeds = {}
        for name, args in runs.items():
            d = os.path.join(tmp, name)
            subprocess.run([cli, "train", "--train"] + args + ["--epochs", "2", "--threads", "1",
                           "--quiet", "--no-save", "--keep", "100", "--checkpoint-dir", d],
                           check=True, stdout=subprocess.DEVNULL)
            names = sorted(n for n in os.listdir(d) if ".tmp." not in n)
            # checkpoint-EEEEEE-BBBBBBBBB.safetensors: the mid-epoch run's newest mid-epoch one
            mid = [n for n in names if not n.endswith("-000000000.safetensors")]
            newest = (mid if name.endswith("mid_epoch") and mid else names)[-1]
            with open(os.path.join(d, newest), "rb") as f:
                seeds[name] = f.read()
            write("checkpoint_load", name, seeds[name])

    meta, tensors = read_st(seeds["adam_best_weights"])
    state = json.loads(meta["state"])

    def case(name, meta_changes=None, state_changes=None, tensor_change=None):
        m = dict(meta)
        m.update(meta_changes or {})
        if state_changes:
            st = dict(state)
            st.update(state_changes)
            m["state"] = json.dumps(st, separators=(",", ":"))
        ts = [tensor_change(t) if tensor_change else t for t in tensors]
        write("checkpoint_load", name, write_st(m, [t for t in ts if t is not None]))

    def nan_in(target):
        def change(t):
            if t[0] != target:
                return t
            return (t[0], t[1], t[2], struct.pack("<f", float("nan")) + t[3][4:])
        return change

    def shorter(target):
        def change(t):
            if t[0] != target:
                return t
            return (t[0], t[1], [t[2][0] - 1], t[3][:-4])
        return change

    case("a61_no_format", {"format": "backprop-mlp"})
    case("a61_version_2", {"format_version": "2"})
    flipped = bytearray(seeds["adam_best_weights"])
    flipped[-3] ^= 0x10
    write("checkpoint_load", "a62_flipped_byte", bytes(flipped))
    case("a64_short_moment", tensor_change=shorter("optimizer.exp_avg"))
    case("a64_missing_moment", tensor_change=lambda t: None if t[0] == "optimizer.exp_avg_sq" else t)
    case("a65_optimizer_not_a_name", {"optimizer": "adam\x1b[2J"})
    case("a65_config_not_json", {"config": "{\"lr\":"})
    case("a66_step_zero", {"optimizer_counters": "{\"step\":\"0\"}"})
    case("a66_step_huge", {"optimizer_counters": "{\"step\":\"18446744073709551615\"}"})
    case("a66_batch_fraction", state_changes={"batch": 1.5})
    case("a66_epoch_1e300", state_changes={"epoch": 1e300})
    case("a67_rng_zeros", state_changes={"shuffle_rng": ["0", "0", "0", "0"]})
    case("a67_rng_three_words", state_changes={"dropout_rng": ["1", "2", "3"]})
    case("a68_negative_row", tensor_change=lambda t: (t[0], t[1], t[2], struct.pack("<q", -1) + t[3][8:])
         if t[0] == "state.order" else t)
    case("a69_nan_moment", tensor_change=nan_in("optimizer.exp_avg_sq"))
    case("a69_nan_best_weight", tensor_change=nan_in("state.best_params"))
    case("a69_inf_plateau_scale", state_changes={"plateau_scale": "inf"})
    case("deep_state", {"state": "[" * 10000 + "]" * 10000})


def cli_corpus():
    seeds = {
        "train_csv": ["train", "--train", "d.csv", "--hidden", "8,4", "--lr", "0.5", "--epochs", "3"],
        "train_idx": ["train", "--data", "dir", "--activation", "relu", "--output", "softmax",
                      "--loss", "cross-entropy", "--batch-size", "64", "--threads", "2"],
        "train_regress": ["train", "--train", "r.csv", "--task", "regress", "--label-column", "y1,y2",
                          "--layers", "3,8,2", "--val-split", "0.2", "--seed", "18446744073709551615"],
        "eval": ["eval", "--model", "m.safetensors", "--test", "t.csv", "--json"],
        "predict": ["predict", "--model", "m.safetensors", "--input", "x.csv", "--output", "p.csv"],
        "info": ["info", "--model", "m.safetensors"],
        "gradcheck": ["gradcheck", "--layers", "3,4,2", "--activation", "tanh"],
        "spec_triple": ["relu", "softmax", "cross-entropy"],
        "help": ["train", "--help"],
        "a70_unknown_flag": ["train", "--bogus"],
        "a71_missing_value": ["train", "--train"],
        "a72_partial_number": ["train", "--lr", "0.1x", "--epochs", "1e3"],
        "a72_empty_number": ["train", "--epochs", ""],
        "a73_out_of_range": ["train", "--lr", "-1", "--batch-size", "0", "--threads", "99999",
                             "--val-split", "1.5", "--leaky-slope", "nan"],
        "a74_huge_widths": ["train", "--hidden", "2147483647,2147483647"],
        "a74_width_list_edges": ["5,,3", ",", "99999999999999999999", "-1", "16777217"],
        "a76_conflicts": ["train", "--header", "--no-header", "--standardize", "--no-standardize"],
        "a78_newline_path": ["train", "--train", "a\nb.csv", "--save", "\x1b[31m"],
    }
    for name, args in seeds.items():
        write("cli", name, b"\0".join(a.encode() for a in args))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cli", help="a built backprop binary, for the model_load and checkpoint_load seeds")
    args = p.parse_args()
    idx_corpus()
    idx_gz_corpus()
    csv_corpus()
    safetensors_corpus()
    cli_corpus()
    if args.cli:
        model_corpus(args.cli)
        checkpoint_corpus(args.cli)


if __name__ == "__main__":
    main()
