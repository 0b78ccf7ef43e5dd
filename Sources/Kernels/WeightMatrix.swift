/// A row-major weight matrix `[rows × cols]` in the precision the checkpoint stores it.
///
/// Weights stay in their checkpoint precision: bf16 weights are read straight out of the
/// memory-mapped safetensors file, so a decode step streams 2 bytes per weight, not 4;
/// block-scaled FP8 (DeepSeek-V3/R1) likewise, 1 byte per weight.
public struct WeightMatrix: @unchecked Sendable {
    public enum Storage {
        case f32(UnsafePointer<Float>)
        case bf16(UnsafePointer<UInt16>)
        case fp8(FP8Blocks)

        public var bytesPerElement: Int {
            switch self {
            case .f32: 4
            case .bf16: 2
            case .fp8: 1
            }
        }
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

    public var bytesPerElement: Int { storage.bytesPerElement }

    public var byteCount: Int { rows * cols * bytesPerElement }

    /// Rows `range` as a matrix of their own, sharing memory (an expert's slice, a head's block).
    public func rows(_ range: Range<Int>) -> WeightMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        let offset = range.lowerBound * cols
        switch storage {
        case .f32(let p): return WeightMatrix(rows: range.count, cols: cols, storage: .f32(p + offset), owner: owner)
        case .bf16(let p): return WeightMatrix(rows: range.count, cols: cols, storage: .bf16(p + offset), owner: owner)
        case .fp8(let q): return WeightMatrix(rows: range.count, cols: cols, storage: .fp8(q.dropping(rows: range.lowerBound, cols: cols)), owner: owner)
        }
    }

    /// Row `r` widened to f32 into `out` (embedding lookup, absorbed attention).
    public func copyRow(_ r: Int, to out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .f32(let p): out.update(from: p + r * cols, count: cols)
        case .bf16(let p): BF16.widen(UnsafeRawPointer(p + r * cols), to: out, count: cols)
        case .fp8(let q):
            let row = q.bytes + r * cols, scales = q.scaleRow(r)
            for c in 0..<cols { out[c] = FP8.toFloat(row[c]) * scales[c / q.blockCols] }
        }
    }
}

/// An E4M3 matrix with one f32 scale per `blockRows × blockCols` tile (DeepSeek's
/// `weight_block_size`; the last tile in each dimension may be ragged): element `(r, c)` is
/// `e4m3(bytes[r · cols + c]) · scales[((firstRow + r) / blockRows) · scaleCols + c / blockCols]`.
/// A row slice keeps the tensor's whole scale grid and its absolute first row, so slices
/// starting inside a tile (a head's block of `kv_b_proj`) find their scales.
public struct FP8Blocks: @unchecked Sendable {
    /// Row 0 of this matrix (row `firstRow` of the stored tensor).
    public let bytes: UnsafePointer<UInt8>
    /// The stored tensor's row-major scale grid.
    public let scales: UnsafePointer<Float>
    /// Columns of the scale grid: `ceil(cols / blockCols)`.
    public let scaleCols: Int
    public let blockRows: Int
    public let blockCols: Int
    /// The stored tensor's row that is row 0 here.
    public let firstRow: Int

    public init(bytes: UnsafePointer<UInt8>, scales: UnsafePointer<Float>, scaleCols: Int, blockRows: Int, blockCols: Int, firstRow: Int = 0) {
        precondition(blockRows > 0 && blockCols > 0)
        self.bytes = bytes
        self.scales = scales
        self.scaleCols = scaleCols
        self.blockRows = blockRows
        self.blockCols = blockCols
        self.firstRow = firstRow
    }

    /// The scales of row `r`'s tiles, one per `blockCols` columns.
    @inline(__always)
    public func scaleRow(_ r: Int) -> UnsafePointer<Float> { scales + tile(ofRow: r) * scaleCols }

    /// The row tile that holds row `r`: its row of the scale grid.
    @inline(__always)
    func tile(ofRow r: Int) -> Int { (firstRow + r) / blockRows }

    /// The first row of tile `t`, counted here (below 0 when the tile starts before this slice).
    @inline(__always)
    func start(ofTile t: Int) -> Int { t * blockRows - firstRow }

    /// The same tensor from row `rows` on (of a matrix `cols` wide).
    func dropping(rows: Int, cols: Int) -> FP8Blocks {
        FP8Blocks(bytes: bytes + rows * cols, scales: scales, scaleCols: scaleCols, blockRows: blockRows, blockCols: blockCols, firstRow: firstRow + rows)
    }
}

/// Objects that together keep a matrix's memory alive (an FP8 matrix's mapped bytes and its scales).
public final class Owners: @unchecked Sendable {
    public let objects: [AnyObject]
    public init(_ objects: [AnyObject]) { self.objects = objects }
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

extension WeightMatrix {
    /// `Wᵀ` in the same format, in memory it owns: the same stored values (E4M3 bytes keep
    /// their tiles' scales), so a transposed product runs on the ordinary exact kernels.
    /// MLA folds `kv_b_proj`'s key half into every query this way.
    public func transposed() -> WeightMatrix {
        switch storage {
        case .f32(let p):
            let a = Allocation(byteCount: rows * cols * 4), out = a.floats(count: rows * cols)
            Self.transpose(p, rows: rows, cols: cols, into: out)
            return WeightMatrix(rows: cols, cols: rows, storage: .f32(out), owner: a)
        case .bf16(let p):
            let a = Allocation(byteCount: rows * cols * 2), out = a.halves(count: rows * cols)
            Self.transpose(p, rows: rows, cols: cols, into: out)
            return WeightMatrix(rows: cols, cols: rows, storage: .bf16(out), owner: a)
        case .fp8(let q):
            let bytes = Allocation(byteCount: rows * cols), out = bytes.raw.bindMemory(to: UInt8.self, capacity: rows * cols)
            Self.transpose(q.bytes, rows: rows, cols: cols, into: out)
            // Tile rows become tile columns; a slice that starts inside a tile (a head's
            // block of `kv_b_proj`) takes one scale per column instead.
            let blockCols = q.firstRow % q.blockRows == 0 ? q.blockRows : 1
            let scaleRows = (cols + q.blockCols - 1) / q.blockCols, scaleCols = (rows + blockCols - 1) / blockCols
            let grid = Allocation(byteCount: scaleRows * scaleCols * 4), scales = grid.floats(count: scaleRows * scaleCols)
            for i in 0..<scaleRows { for j in 0..<scaleCols { scales[i * scaleCols + j] = q.scaleRow(j * blockCols)[i] } }
            let blocks = FP8Blocks(bytes: out, scales: scales, scaleCols: scaleCols, blockRows: q.blockCols, blockCols: blockCols)
            return WeightMatrix(rows: cols, cols: rows, storage: .fp8(blocks), owner: Owners([bytes, grid]))
        }
    }

    private static func transpose<T>(_ p: UnsafePointer<T>, rows: Int, cols: Int, into out: UnsafeMutablePointer<T>) {
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = p[r * cols + c] } }
    }
}

extension WeightMatrix.Storage {
    /// The first element's address: two matrices with the same identity share memory.
    public var identity: UnsafeRawPointer {
        switch self {
        case .f32(let p): UnsafeRawPointer(p)
        case .bf16(let p): UnsafeRawPointer(p)
        case .fp8(let q): UnsafeRawPointer(q.bytes)
        }
    }
}
