import Foundation
import Kernels

/// A model directory: `config.json` plus `model.safetensors` or a sharded set with
/// `model.safetensors.index.json`.
///
/// Shards are opened (mapped) lazily, the first time one of their tensors is asked for, so a rank
/// that needs few tensors maps only their files. BF16, F32 and block-scaled FP8 weights are handed
/// out zero-copy, pointing into the mapping (FP8 with its scales as f32 in an `Allocation`);
/// F16 is converted to f32.
/// Safe to use from several threads.
public final class Checkpoint: @unchecked Sendable {
    public static let configFile = "config.json"
    public static let singleFile = "model.safetensors"
    public static let indexFile = "model.safetensors.index.json"

    /// Bytes of the tensors handed out so far (what this process keeps resident for its weights).
    public struct LoadStats: Sendable, Equatable {
        /// Calls that returned a tensor.
        public var tensorsLoaded = 0
        /// Bytes of distinct tensors handed out zero-copy from the mapped files.
        public var mappedBytes = 0
        /// Bytes allocated for converted tensors (F16 → f32, FP8 scales, vectors, misaligned copies).
        public var allocatedBytes = 0
        /// `mappedBytes + allocatedBytes`.
        public var residentBytes: Int { mappedBytes + allocatedBytes }
    }

    public let directory: URL
    /// The parsed, validated `config.json`.
    public let config: ModelConfig

    /// Every tensor name in the checkpoint, sorted (from the index, or the single file's header).
    public let tensorNames: [String]

    /// Tensor name → shard file name, from the index; nil for a single `model.safetensors`.
    private let weightMap: [String: String]?
    private let lock = NSLock()
    private var files: [String: SafetensorsFile] = [:]
    private var stats = LoadStats()
    private var mappedNames: Set<String> = []

    /// Reads `config.json` and the weight layout in `directory`.
    public convenience init(directory: URL) throws {
        try self.init(directory: directory,
                      config: ModelConfig(contentsOf: directory.appendingPathComponent(Self.configFile)))
    }

    /// Opens the weights in `directory` with an already-parsed `config`.
    public init(directory: URL, config: ModelConfig) throws {
        self.directory = directory
        self.config = config
        let fm = FileManager.default
        let single = directory.appendingPathComponent(Self.singleFile)
        let index = directory.appendingPathComponent(Self.indexFile)
        if fm.fileExists(atPath: single.path) {
            weightMap = nil
            let file = try SafetensorsFile(url: single)
            files[Self.singleFile] = file
            tensorNames = file.tensorNames
        } else if fm.fileExists(atPath: index.path) {
            weightMap = try Self.readIndex(index)
            tensorNames = weightMap!.keys.sorted()
            var byShard: [String: [String]] = [:]
            for (name, shard) in weightMap! { byShard[shard, default: []].append(name) }
            for (shard, names) in byShard.sorted(by: { $0.key < $1.key })
            where !fm.fileExists(atPath: directory.appendingPathComponent(shard).path) {
                throw CheckpointError.missingShard(shard: directory.appendingPathComponent(shard).path, index: Self.indexFile,
                                                   tensorCount: names.count, example: names.min()!)
            }
        } else {
            throw CheckpointError.noWeights(directory: directory.path)
        }
    }

    private static func readIndex(_ url: URL) throws -> [String: String] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CheckpointError.io(file: url.path, operation: "read", reason: (error as NSError).localizedDescription)
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError.badIndex(file: url.path, reason: "not a JSON object")
        }
        guard let map = root["weight_map"] as? [String: Any] else {
            throw CheckpointError.badIndex(file: url.path, reason: "no weight_map object")
        }
        var result: [String: String] = [:]
        for (name, value) in map {
            guard let shard = value as? String, !shard.isEmpty, !shard.hasPrefix("/"),
                  !shard.split(separator: "/").contains("..") else {
                throw CheckpointError.badIndex(file: url.path, reason: "weight_map[\(name)] is not a file name in the directory")
            }
            result[name] = shard
        }
        guard !result.isEmpty else { throw CheckpointError.badIndex(file: url.path, reason: "weight_map is empty") }
        return result
    }

    // MARK: Names

    /// Whether the checkpoint lists tensor `name`.
    public func contains(_ name: String) -> Bool {
        if let weightMap { return weightMap[name] != nil }
        return lock.withLock { files[Self.singleFile]!.tensors[name] != nil }
    }

    /// Header facts of tensor `name` (maps its file if not yet mapped).
    public func info(_ name: String) throws -> TensorInfo { try locate(name).info }

    /// Shard files mapped so far, sorted.
    public var openedFiles: [String] { lock.withLock { files.keys.sorted() } }

    /// Bytes of tensors handed out so far.
    public var loadStats: LoadStats { lock.withLock { stats } }

    /// `loadStats.residentBytes`: bytes of weights this process holds for the tensors it loaded.
    public var residentBytes: Int { loadStats.residentBytes }

    /// Bytes of the weight files on disk: `model.safetensors`, or every shard the index names.
    public func weightFileBytes() throws -> Int {
        let names = weightMap.map { Set($0.values) } ?? [Self.singleFile]
        return try names.reduce(0) { total, name in
            let path = directory.appendingPathComponent(name).path
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw CheckpointError.io(file: path, operation: "stat", reason: String(cString: strerror(errno)))
            }
            return total + Int(st.st_size)
        }
    }

    /// Tensor `name` exactly as stored (any dtype), pointing into its mapped file, for copying it
    /// elsewhere; not counted as loaded. Valid while this checkpoint lives.
    public func storedBytes(of name: String) throws -> (info: TensorInfo, bytes: UnsafeRawBufferPointer) {
        let (file, info) = try locate(name)
        return (info, try file.bytes(name))
    }

    /// Locks the pages of every tensor handed out zero-copy so far in RAM (`mlock`), reading in
    /// what is not resident: a host that cannot hold them fails here instead of paging while it
    /// serves. Converted copies (FP8 scales, vectors) are ordinary heap memory and are not locked.
    /// Returns the bytes locked (whole pages).
    @discardableResult
    public func lockMappedWeights() throws(WeightLockError) -> Int {
        let spans: [(file: SafetensorsFile, pages: [Range<Int>])] = lock.withLock {
            var namesByFile: [String: [String]] = [:]
            for name in mappedNames { namesByFile[weightMap?[name] ?? Self.singleFile, default: []].append(name) }
            return namesByFile.sorted { $0.key < $1.key }.map { file, names in (files[file]!, files[file]!.pageSpans(of: names)) }
        }
        let bytes = spans.reduce(0) { $0 + $1.pages.reduce(0) { $0 + $1.count } }
        let limits = MemoryLimits.current()
        // Locking past a cgroup's limit does not fail: it summons the OOM killer. Refuse first.
        if let cgroup = limits.cgroup, bytes > cgroup.room {
            throw WeightLockError(bytes: bytes, cause: .cgroupLimit, limits: limits)
        }
        for (file, pages) in spans {
            let code = file.lockPages(pages)
            guard code == 0 else { throw WeightLockError(bytes: bytes, cause: .system(code), limits: limits) }
        }
        return bytes
    }

    /// Where `name` should be: the shard the index assigns it to, or the directory.
    private func location(_ name: String) -> String {
        if let weightMap {
            return weightMap[name] ?? "\(directory.path) (not in \(Self.indexFile))"
        }
        return directory.appendingPathComponent(Self.singleFile).path
    }

    private func locate(_ name: String) throws -> (file: SafetensorsFile, info: TensorInfo) {
        let fileName: String
        if let weightMap {
            guard let shard = weightMap[name] else { throw CheckpointError.missingTensor(name, location: location(name)) }
            fileName = shard
        } else {
            fileName = Self.singleFile
        }
        let file = try lock.withLock {
            if let f = files[fileName] { return f }
            let f = try SafetensorsFile(url: directory.appendingPathComponent(fileName))
            files[fileName] = f
            return f
        }
        guard let info = file.tensors[name] else { throw CheckpointError.missingTensor(name, location: location(name)) }
        return (file, info)
    }

    private func record(_ name: String, mapped: Int = 0, allocated: Int = 0) {
        lock.withLock {
            stats.tensorsLoaded += 1
            stats.allocatedBytes += allocated
            if mapped > 0, mappedNames.insert(name).inserted { stats.mappedBytes += mapped }
        }
    }

    // MARK: Loading

    /// Weight `name` as a `rows × cols` matrix, checking its stored shape against `[rows, cols]`.
    /// BF16/F32 point into the mapped file, and so does F8_E4M3 (with `<name>_scale_inv`, F32 or
    /// BF16, and the config's block size), its scales kept as f32; F16 becomes f32.
    public func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        let (file, info) = try locate(name)
        guard info.shape == [rows, cols] else {
            throw CheckpointError.shapeMismatch(tensor: name, file: info.file, shape: info.shape, expected: [rows, cols])
        }
        let raw = try file.bytes(name)
        let count = rows * cols
        switch info.dtype {
        case .bf16:
            if Int(bitPattern: raw.baseAddress) % 2 == 0 {
                record(name, mapped: info.byteCount)
                return WeightMatrix(rows: rows, cols: cols,
                                    storage: .bf16(raw.baseAddress!.assumingMemoryBound(to: UInt16.self)), owner: file)
            }
            let a = Allocation(byteCount: info.byteCount)
            a.raw.copyMemory(from: raw.baseAddress!, byteCount: info.byteCount)
            record(name, allocated: a.byteCount)
            return WeightMatrix(rows: rows, cols: cols, storage: .bf16(UnsafePointer(a.halves(count: count))), owner: a)
        case .f32:
            if Int(bitPattern: raw.baseAddress) % 4 == 0 {
                record(name, mapped: info.byteCount)
                return WeightMatrix(rows: rows, cols: cols,
                                    storage: .f32(raw.baseAddress!.assumingMemoryBound(to: Float.self)), owner: file)
            }
            let a = Allocation(byteCount: info.byteCount)
            a.raw.copyMemory(from: raw.baseAddress!, byteCount: info.byteCount)
            record(name, allocated: a.byteCount)
            return WeightMatrix(rows: rows, cols: cols, storage: .f32(UnsafePointer(a.floats(count: count))), owner: a)
        case .f16:
            let a = Allocation(byteCount: count * 4)
            FloatConversion.f16ToF32(raw.baseAddress!, to: a.floats(count: count), count: count)
            record(name, allocated: a.byteCount)
            return WeightMatrix(rows: rows, cols: cols, storage: .f32(UnsafePointer(a.floats(count: count))), owner: a)
        case .f8E4M3:
            guard let block = config.fp8BlockSize else { throw CheckpointError.missingBlockSize(tensor: name, file: info.file) }
            let scales = try fp8Scales(of: name, rows: rows, cols: cols, block: block)
            let a = Allocation(byteCount: scales.count * 4)
            let sp = a.floats(count: scales.count)
            scales.withUnsafeBufferPointer { if !$0.isEmpty { sp.update(from: $0.baseAddress!, count: $0.count) } }
            record(name, mapped: info.byteCount, allocated: a.byteCount)
            let q = FP8Blocks(bytes: (raw.baseAddress ?? UnsafeRawPointer(a.raw)).assumingMemoryBound(to: UInt8.self), scales: sp,
                              scaleCols: (cols + block.cols - 1) / block.cols, blockRows: block.rows, blockCols: block.cols)
            return WeightMatrix(rows: rows, cols: cols, storage: .fp8(q), owner: Owners([file, a]))
        case .i64, .i32, .u8, .bool:
            throw CheckpointError.unsupportedDType(tensor: name, file: info.file, dtype: info.dtype.rawValue,
                                                   reason: "integer tensors cannot be loaded as weights")
        }
    }

    /// The `ceil(rows/br) × ceil(cols/bc)` grid of `<name>_scale_inv`, as f32.
    private func fp8Scales(of name: String, rows: Int, cols: Int, block: ModelConfig.BlockSize) throws -> [Float] {
        let scaleName = name + "_scale_inv"
        let located: (file: SafetensorsFile, info: TensorInfo)
        do {
            located = try locate(scaleName)
        } catch CheckpointError.missingTensor {
            throw CheckpointError.missingScale(tensor: name, scale: scaleName, location: location(scaleName))
        }
        let expected = [(rows + block.rows - 1) / block.rows, (cols + block.cols - 1) / block.cols]
        guard located.info.shape == expected else {
            throw CheckpointError.shapeMismatch(tensor: scaleName, file: located.info.file, shape: located.info.shape, expected: expected)
        }
        return try floats(scaleName, file: located.file, info: located.info, allowFP8: false)
    }

    /// Vector `name` (a norm weight, a gate's correction bias) as f32, checking its shape is `[count]`.
    public func vector(_ name: String, count: Int) throws -> [Float] {
        let (file, info) = try locate(name)
        guard info.shape == [count] else {
            throw CheckpointError.shapeMismatch(tensor: name, file: info.file, shape: info.shape, expected: [count])
        }
        if info.dtype == .f8E4M3 && contains(name + "_scale_inv") {
            throw CheckpointError.unsupportedDType(tensor: name, file: info.file, dtype: info.dtype.rawValue,
                                                   reason: "block-scaled FP8 vectors are not supported")
        }
        let values = try floats(name, file: file, info: info, allowFP8: true)
        record(name, allocated: values.count * 4)
        return values
    }

    /// Any float tensor's elements as f32, row-major.
    private func floats(_ name: String, file: SafetensorsFile, info: TensorInfo, allowFP8: Bool) throws -> [Float] {
        let raw = try file.bytes(name)
        let n = info.elementCount
        switch info.dtype {
        case .f32:
            return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
                if n > 0 { UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: n * 4) }
                initialized = n
            }
        case .bf16:
            return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
                if n > 0 { BF16.widen(raw.baseAddress!, to: buf.baseAddress!, count: n) }
                initialized = n
            }
        case .f16:
            return [Float](unsafeUninitializedCapacity: n) { buf, initialized in
                if n > 0 { FloatConversion.f16ToF32(raw.baseAddress!, to: buf.baseAddress!, count: n) }
                initialized = n
            }
        case .f8E4M3 where allowFP8:
            return raw.map { FloatConversion.e4m3ToF32($0) }
        default:
            throw CheckpointError.unsupportedDType(tensor: name, file: info.file, dtype: info.dtype.rawValue,
                                                   reason: "expected a float tensor (F32, BF16 or F16)")
        }
    }
}
