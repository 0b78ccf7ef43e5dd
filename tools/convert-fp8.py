# Converts a bf16 DeepSeek checkpoint to DeepSeek-V3-style FP8, for benchmarking the FP8
# kernels (docs/PERFORMANCE.md): every Linear weight (not the embedding, lm_head, the MoE
# gate or norms) as F8_E4M3 with 128 x 128 f32 `_scale_inv` tiles (scale = tile amax / 448).
# Usage: python3 tools/convert-fp8.py SRC_DIR DST_DIR  (SRC sharded, with an index; numpy)
import json, os, shutil, struct, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
B = 128
os.makedirs(dst, exist_ok=True)
index = json.load(open(os.path.join(src, "model.safetensors.index.json")))["weight_map"]
headers = {}
for shard in sorted(set(index.values())):
    with open(os.path.join(src, shard), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        headers[shard] = (json.loads(f.read(n)), 8 + n)

def load(name):
    shard = index[name]
    h, base = headers[shard]
    e = h[name]
    a, b = e["data_offsets"]
    mm = np.memmap(os.path.join(src, shard), dtype=np.uint8, mode="r", offset=base + a, shape=(b - a,))
    assert e["dtype"] in ("BF16", "F32"), e["dtype"]
    if e["dtype"] == "BF16":
        v = (mm.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        v = np.array(mm.view(np.float32))
    return e["dtype"], e["shape"], v.reshape(e["shape"]), bytes(mm)

# E4M3 positive finite values, codes 0..0x7E (increasing).
codes = np.arange(0x7F, dtype=np.uint32)
e, m = codes >> 3, codes & 7
table = np.where(e == 0, m / 8.0 * 2.0**-6, (1 + m / 8.0) * 2.0**(e.astype(np.float64) - 7)).astype(np.float32)
mid = (table[1:] + table[:-1]) / 2

def quantize(w):
    r, c = w.shape
    sr, sc = -(-r // B), -(-c // B)
    scales = np.zeros((sr, sc), np.float32)
    q = np.zeros((r, c), np.uint8)
    for i in range(sr):
        for j in range(sc):
            t = w[i*B:(i+1)*B, j*B:(j+1)*B]
            amax = float(np.abs(t).max())
            s = np.float32(amax / 448.0) if amax > 0 else np.float32(1.0)
            v = t / s
            code = np.searchsorted(mid, np.minimum(np.abs(v), 448.0)).astype(np.uint8)
            q[i*B:(i+1)*B, j*B:(j+1)*B] = code | np.where(v < 0, 0x80, 0).astype(np.uint8)
            scales[i, j] = s
    return q, scales

def is_linear(name, shape):
    return (len(shape) == 2 and name.endswith(".weight") and "embed_tokens" not in name
            and not name.startswith("lm_head") and not name.endswith("mlp.gate.weight") and "norm" not in name)

entries = []  # (name, dtype, shape, bytes)
for name in sorted(index):
    dtype, shape, v, raw = load(name)
    if is_linear(name, shape):
        q, s = quantize(v)
        entries.append((name, "F8_E4M3", shape, q.tobytes()))
        entries.append((name + "_scale_inv", "F32", list(s.shape), s.tobytes()))
    else:
        entries.append((name, dtype, shape, raw))
header, off = {}, 0
for name, dtype, shape, data in entries:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
    off += len(data)
hb = json.dumps(header).encode()
hb += b" " * (-len(hb) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hb)))
    f.write(hb)
    for _, _, _, data in entries:
        f.write(data)
cfg = json.load(open(os.path.join(src, "config.json")))
cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [B, B]}
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(src, f), dst)
print("wrote", off, "bytes of tensors")
