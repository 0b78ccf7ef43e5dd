/// A row-major weight matrix `[rows × cols]` in the precision the checkpoint stores it.
///
/// Weights stay in their checkpoint precision: bf16 weights are read straight out of the
/// memory-mapped safetensors file, so a decode step streams 2 bytes per weight, not 4.
public struct WeightMatrix: @unchecked Sendable {
    public enum Storage {
        case f32(UnsafePointer<Float>)
        case bf16(UnsafePointer<UInt16>)
    }

    public let rows: Int
    public let cols: Int
    public let storage: Storage
    /// Keeps the memory behind `storage` alive (a mapped file or an `Allocation`).
    public let owner: AnyObject?

    public init(rows: Int, cols: Int, storage: Storage, owner: AnyObject?) {
        self.rows = rows
        self.cols = cols
        self.storage = storage
        self.owner = owner
    }

    public var bytesPerElement: Int {
        switch storage {
        case .f32: 4
        case .bf16: 2
        }
    }

    public var byteCount: Int { rows * cols * bytesPerElement }

    /// Rows `range` as a matrix of their own, sharing memory (an expert's slice, a head's block).
    public func rows(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        let offset = range.lowerBound * cols
        switch storage {
        case .f32(let p): return WeightMatrix(rows: range.count, cols: cols, storage: .f32(p + offset), owner: owner)
        case .bf16(let p): return WeightMatrix(rows: range.count, cols: cols, storage: .bf16(p + offset), owner: owner)
        }
    }

    /// Row `r` widened to f32 into `out` (embedding lookup, absorbed attention).
    public func copyRow(_ r: Int, to out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .f32(let p): out.update(from: p + r * cols, count: cols)
        case .bf16(let p): BF16.widen(p + r * cols, to: out, count: cols)
        }
    }
}

/// An owned, 64-byte aligned block of memory that outlives the matrices pointing into it.
public final class Allocation: @unchecked Sendable {
    public let raw: UnsafeMutableRawPointer
    public let byteCount: Int

    public init(byteCount: Int) {
        self.byteCount = byteCount
        raw = .allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    deinit { raw.deallocate() }

    public func floats(count: Int) -> UnsafeMutablePointer<Float> {
        precondition(count * 4 <= byteCount)
        return raw.bindMemory(to: Float.self, capacity: count)
    }

    public func halves(count: Int) -> UnsafeMutablePointer<UInt16> {
        precondition(count * 2 <= byteCount)
        return raw.bindMemory(to: UInt16.self, capacity: count)
    }
}

extension WeightMatrix {
    /// An f32 matrix that owns a copy of `values` (row-major).
    public static func f32(rows: Int, cols: Int, values: [Float]) -> WeightMatrix {
        precondition(values.count == rows * cols)
        let a = Allocation(byteCount: values.count * 4)
        let p = a.floats(count: values.count)
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: values.count) }
        return WeightMatrix(rows: rows, cols: cols, storage: .f32(p), owner: a)
    }
}

extension WeightMatrix.Storage {
    /// The first element's address: two matrices with the same identity share memory.
    public var identity: UnsafeRawPointer {
        switch self {
        case .f32(let p): UnsafeRawPointer(p)
        case .bf16(let p): UnsafeRawPointer(p)
        }
    }
}
