import Foundation
import Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes safetensors files in two passes without holding the data in memory.
///
/// Pass one declares every tensor (`add`) with a closure that fills its bytes; pass two
/// (`write(to:)` or `writeCheckpoint(to:maxShardBytes:)`) lays out the file, maps it, and calls each
/// closure once, in declaration order, with the tensor's bytes inside the output mapping — so a
/// generator writes its values straight into the file. Buffers start zeroed.
///
/// The header is JSON with sorted keys and `__metadata__: {"format": "pt"}`, padded with spaces to a
/// multiple of 8 bytes. Data is laid out widest element type first, so every tensor is aligned to its
/// element size and loads zero-copy.
public final class SafetensorsWriter {
    /// Fills one tensor's bytes (exactly `byteCount` of them).
    public typealias Fill = (UnsafeMutableRawBufferPointer) throws -> Void

    struct Entry {
        let name: String
        let dtype: DType
        let shape: [Int]
        let byteCount: Int
        let fill: Fill
    }

    private var entries: [Entry] = []
    private var names: Set<String> = []
    /// `__metadata__` written into every file.
    public var metadata: [String: String] = ["format": "pt"]

    public init() {}

    /// Number of tensors declared.
    public var tensorCount: Int { entries.count }
    /// Bytes of tensor data declared.
    public var totalBytes: Int { entries.reduce(0) { $0 + $1.byteCount } }

    /// Declares tensor `name`; `fill` is called once during writing with its `elements × dtype.byteSize` bytes.
    public func add(_ name: String, dtype: DType, shape: [Int], fill: @escaping Fill) throws {
        guard !name.isEmpty, name != "__metadata__" else { throw CheckpointError.invalidTensor(name, reason: "reserved or empty name") }
        guard names.insert(name).inserted else { throw CheckpointError.invalidTensor(name, reason: "declared twice") }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            names.remove(name)
            throw CheckpointError.invalidTensor(name, reason: "shape \(shape) has a negative dimension")
        }
        var bytes = dtype.byteSize
        for d in shape {
            let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
            guard !overflow else {
                names.remove(name)
                throw CheckpointError.invalidTensor(name, reason: "shape \(shape) is too large")
            }
            bytes = p
        }
        entries.append(Entry(name: name, dtype: dtype, shape: shape, byteCount: bytes, fill: fill))
    }

    /// Declares tensor `name` with its raw little-endian bytes.
    public func add(_ name: String, dtype: DType, shape: [Int], bytes: [UInt8]) throws {
        let expected = shape.reduce(dtype.byteSize, *)
        guard bytes.count == expected else {
            throw CheckpointError.invalidTensor(name, reason: "\(bytes.count) bytes given, \(dtype) × \(shape) needs \(expected)")
        }
        try add(name, dtype: dtype, shape: shape) { buffer in buffer.copyBytes(from: bytes) }
    }

    /// Declares tensor `name` from f32 values, stored as `dtype` (F32, BF16 and F16 round to nearest
    /// even; F8_E4M3 rounds to nearest and saturates at ±448).
    public func add(_ name: String, shape: [Int], floats: [Float], as dtype: DType) throws {
        guard floats.count == shape.reduce(1, *) else {
            throw CheckpointError.invalidTensor(name, reason: "\(floats.count) values given for shape \(shape)")
        }
        guard dtype.isFloat else { throw CheckpointError.invalidTensor(name, reason: "\(dtype) is not a float type") }
        try add(name, dtype: dtype, shape: shape) { buffer in
            for (i, x) in floats.enumerated() {
                switch dtype {
                case .f32: buffer.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                case .bf16: buffer.storeBytes(of: BF16.fromFloat(x).littleEndian, toByteOffset: i * 2, as: UInt16.self)
                case .f16: buffer.storeBytes(of: Float16(x).bitPattern.littleEndian, toByteOffset: i * 2, as: UInt16.self)
                case .f8E4M3: buffer[i] = FloatConversion.f32ToE4M3(x)
                default: break
                }
            }
        }
    }

    /// Writes every declared tensor into one file at `url`.
    public func write(to url: URL) throws {
        try Self.writeFile(url, entries: entries, metadata: metadata)
    }

    /// Writes a checkpoint's weights into `directory` as transformers does: one `model.safetensors`
    /// when everything fits in `maxShardBytes`, else `model-0000i-of-0000n.safetensors` shards
    /// (tensors in declaration order, a new shard when the next tensor would overflow the current
    /// one) plus `model.safetensors.index.json`. Weight files of an earlier layout there are removed.
    /// Returns the names of the files written.
    @discardableResult
    public func writeCheckpoint(to directory: URL, maxShardBytes: Int) throws -> [String] {
        var shards: [[Entry]] = [[]]
        var shardBytes = 0
        for e in entries {
            if !shards[shards.count - 1].isEmpty && shardBytes + e.byteCount > maxShardBytes {
                shards.append([])
                shardBytes = 0
            }
            shards[shards.count - 1].append(e)
            shardBytes += e.byteCount
        }
        let names = shards.count == 1
            ? [Checkpoint.singleFile]
            : (1...shards.count).map { String(format: "model-%05d-of-%05d.safetensors", $0, shards.count) }

        try removeStaleWeights(in: directory, keeping: Set(names))
        for (name, shard) in zip(names, shards) {
            try Self.writeFile(directory.appendingPathComponent(name), entries: shard, metadata: metadata)
        }
        guard shards.count > 1 else { return names }

        var weightMap: [String: String] = [:]
        for (name, shard) in zip(names, shards) { for e in shard { weightMap[e.name] = name } }
        let index: [String: Any] = ["metadata": ["total_size": totalBytes], "weight_map": weightMap]
        let url = directory.appendingPathComponent(Checkpoint.indexFile)
        do {
            let data = try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys, .prettyPrinted])
            try data.write(to: url, options: .atomic)
        } catch {
            throw CheckpointError.io(file: url.path, operation: "write", reason: (error as NSError).localizedDescription)
        }
        return names + [Checkpoint.indexFile]
    }

    private func removeStaleWeights(in directory: URL, keeping: Set<String>) throws {
        let fm = FileManager.default
        let existing = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in existing where !keeping.contains(name) {
            let stale = name == Checkpoint.singleFile || name == Checkpoint.indexFile
                || (name.hasPrefix("model-") && name.contains("-of-") && name.hasSuffix(".safetensors"))
            if stale { try? fm.removeItem(at: directory.appendingPathComponent(name)) }
        }
    }

    /// The header JSON (sorted keys), padded with spaces so that `8 + header` is a multiple of 8,
    /// and the data offset of each entry (in `entries` order).
    static func layout(_ entries: [Entry], metadata: [String: String]) throws -> (header: [UInt8], offsets: [Int]) {
        // Widest elements first keeps every tensor aligned to its element size (stable within a width).
        let order = entries.indices.sorted { (entries[$0].dtype.byteSize, -$0) > (entries[$1].dtype.byteSize, -$1) }
        var offsets = [Int](repeating: 0, count: entries.count)
        var object: [String: Any] = ["__metadata__": metadata]
        var position = 0
        for i in order {
            let e = entries[i]
            offsets[i] = position
            object[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [position, position + e.byteCount]] as [String: Any]
            position += e.byteCount
        }
        var header = [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        while header.count % 8 != 0 { header.append(0x20) }
        return (header, offsets)
    }

    static func writeFile(_ url: URL, entries: [Entry], metadata: [String: String]) throws {
        let (header, offsets) = try layout(entries, metadata: metadata)
        let dataStart = 8 + header.count
        let total = dataStart + entries.reduce(0) { $0 + $1.byteCount }
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial")
        func fail(_ operation: String) -> CheckpointError {
            .io(file: url.path, operation: operation, reason: String(cString: strerror(errno)))
        }

        let fd = open(temporary.path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("create") }
        var succeeded = false
        defer {
            close(fd)
            if !succeeded { unlink(temporary.path) }
        }
        // Reserve the blocks up front: writing into a sparse mapping on a full disk would SIGBUS.
        let reserved = posix_fallocate(fd, 0, off_t(total))
        guard reserved == 0 else {
            throw CheckpointError.io(file: url.path, operation: "reserve \(total) bytes for", reason: String(cString: strerror(reserved)))
        }
        guard let map = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), map != MAP_FAILED else { throw fail("mmap") }
        defer { munmap(map, total) }

        map.storeBytes(of: UInt64(header.count).littleEndian, as: UInt64.self)
        header.withUnsafeBytes { (map + 8).copyMemory(from: $0.baseAddress!, byteCount: header.count) }
        for (e, offset) in zip(entries, offsets) {
            try e.fill(UnsafeMutableRawBufferPointer(start: map + dataStart + offset, count: e.byteCount))
        }
        guard rename(temporary.path, url.path) == 0 else { throw fail("rename into") }
        succeeded = true
    }
}
