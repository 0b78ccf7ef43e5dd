import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a safetensors header says about one tensor.
public struct TensorInfo: Sendable, Equatable {
    /// The tensor's name, e.g. `model.layers.3.mlp.experts.17.up_proj.weight`.
    public let name: String
    /// Element type as stored.
    public let dtype: DType
    /// Shape as stored (row-major, outermost first).
    public let shape: [Int]
    /// Name of the safetensors file holding the tensor (no directory).
    public let file: String
    /// Bytes of data (`elementCount × dtype.byteSize`).
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

/// One safetensors file, memory-mapped read-only (`PROT_READ`, `MAP_PRIVATE`) with its header parsed
/// and validated at open: every tensor's bytes lie inside the file, so reading a mapped tensor cannot
/// fault past the end (a file truncated after open is caught at access by re-checking its size).
/// The object owns the mapping: matrices pointing into it keep it as their `owner`.
public final class SafetensorsFile: @unchecked Sendable {
    public let url: URL
    /// The file's name, used in every error message.
    public let fileName: String
    /// Header entries by tensor name.
    public let tensors: [String: TensorInfo]
    /// `__metadata__` of the header (string values only).
    public let metadata: [String: String]
    /// Size of the file when it was opened.
    public let fileSize: Int

    private let fd: Int32
    private let base: UnsafeRawPointer
    private let dataStart: Int
    private let offsets: [String: Int]

    /// Opens, maps and validates `url`; throws `CheckpointError` naming the file (and tensor) on any defect.
    public init(url: URL) throws {
        self.url = url
        let name = url.lastPathComponent
        fileName = name
        fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError.io(file: url.path, operation: "open", reason: Self.errnoText()) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = Self.errnoText()
            close(fd)
            throw CheckpointError.io(file: url.path, operation: "stat", reason: reason)
        }
        fileSize = Int(st.st_size)
        guard fileSize >= 8 else {
            close(fd)
            throw CheckpointError.badHeader(file: name, reason: "the file is \(fileSize) bytes, too short for the 8-byte header length")
        }
        guard let map = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            let reason = Self.errnoText()
            close(fd)
            throw CheckpointError.io(file: url.path, operation: "mmap", reason: reason)
        }
        base = UnsafeRawPointer(map)
        do {
            (tensors, offsets, metadata, dataStart) = try Self.parseHeader(base: base, fileSize: fileSize, fileName: name)
        } catch {
            munmap(map, fileSize)
            close(fd)
            throw error
        }
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), fileSize)
        close(fd)
    }

    /// Tensor names in the header, sorted.
    public var tensorNames: [String] { tensors.keys.sorted() }

    /// The bytes of tensor `name` inside the mapping. Throws if the tensor is absent or the file has
    /// shrunk since it was opened (reading it would fault).
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let info = tensors[name], let offset = offsets[name] else {
            throw CheckpointError.missingTensor(name, location: fileName)
        }
        var st = stat()
        if fstat(fd, &st) == 0, Int(st.st_size) < fileSize {
            throw CheckpointError.io(file: url.path, operation: "read tensor \(name) from",
                                     reason: "the file shrank from \(fileSize) to \(st.st_size) bytes after it was opened")
        }
        return UnsafeRawBufferPointer(start: base + dataStart + offset, count: info.byteCount)
    }

    /// The pages of the mapping that hold the bytes of the tensors `names`, as offsets from its
    /// start: whole pages, merged where they touch (`mlock` counts whole pages).
    public func pageSpans(of names: some Sequence<String>) -> [Range<Int>] {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let spans = names.compactMap { name -> Range<Int>? in
            guard let info = tensors[name], let offset = offsets[name], info.byteCount > 0 else { return nil }
            let start = dataStart + offset, end = start + info.byteCount
            return (start / page * page)..<((end + page - 1) / page * page)
        }.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [Range<Int>] = []
        for span in spans {
            if let last = merged.last, span.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, span.upperBound)
            } else {
                merged.append(span)
            }
        }
        return merged
    }

    /// Locks `spans` of the mapping (from `pageSpans`) in RAM, reading in what is not resident yet.
    /// Returns 0, or the errno of the first span that could not be locked.
    public func lockPages(_ spans: [Range<Int>]) -> Int32 {
        for span in spans where mlock(base + span.lowerBound, span.count) != 0 {
            return errno
        }
        return 0
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func parseHeader(base: UnsafeRawPointer, fileSize: Int, fileName: String) throws
        -> (tensors: [String: TensorInfo], offsets: [String: Int], metadata: [String: String], dataStart: Int)
    {
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(fileSize - 8) else {
            throw CheckpointError.badHeader(
                file: fileName, reason: "header length \(headerLength) runs past the end of the file (\(fileSize) bytes)")
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = fileSize - dataStart
        let headerData = Data(bytes: base + 8, count: Int(headerLength))
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw CheckpointError.badHeader(file: fileName, reason: "the JSON header is not valid JSON (\(headerLength) bytes)")
        }
        guard let entries = root as? [String: Any] else {
            throw CheckpointError.badHeader(file: fileName, reason: "the JSON header is not an object")
        }

        var tensors: [String: TensorInfo] = [:]
        var offsets: [String: Int] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in entries {
            if name == "__metadata__" {
                for (k, v) in value as? [String: Any] ?? [:] { if let s = v as? String { metadata[k] = s } }
                continue
            }
            func bad(_ reason: String) -> CheckpointError { .badTensor(tensor: name, file: fileName, reason: reason) }
            guard let entry = value as? [String: Any] else { throw bad("the header entry is not an object") }
            guard let dtypeName = entry["dtype"] as? String else { throw bad("the header entry has no dtype") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw bad("dtype \(dtypeName) is not supported (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shapeList = entry["shape"] as? [Any] else { throw bad("the header entry has no shape") }
            let shape = shapeList.compactMap(JSONFields.asInt)
            guard shape.count == shapeList.count, shape.allSatisfy({ $0 >= 0 }) else {
                throw bad("shape \(shapeList) is not a list of non-negative integers")
            }
            guard let offsetList = entry["data_offsets"] as? [Any] else { throw bad("the header entry has no data_offsets") }
            let o = offsetList.compactMap(JSONFields.asInt)
            guard o.count == 2, offsetList.count == 2, o[0] >= 0, o[1] >= 0 else {
                throw bad("data_offsets \(offsetList) is not a pair of non-negative integers")
            }
            let (begin, end) = (o[0], o[1])
            guard end >= begin else { throw bad("data_offsets [\(begin), \(end)] end before they begin") }
            guard end <= dataSize else {
                throw bad("data_offsets [\(begin), \(end)] run past the end of the file (\(dataSize) bytes of data)")
            }
            var bytes = dtype.byteSize
            for d in shape {
                let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
                guard !overflow else { throw bad("shape \(shape) is too large") }
                bytes = p
            }
            guard bytes == end - begin else {
                throw bad("dtype \(dtype) × shape \(shape) is \(bytes) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape, file: fileName, byteCount: bytes)
            offsets[name] = begin
        }
        return (tensors, offsets, metadata, dataStart)
    }
}
