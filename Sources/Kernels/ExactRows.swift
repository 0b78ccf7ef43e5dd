internal import ExactRowsAVX512
import Foundation

/// The products of the exact numerics (`Numerics.exact`, the default): every output
/// element `y[t, r]` of every weight format is computed in one fixed order that depends
/// on nothing but the weight's shape — not on the number of tokens in the call, the rows
/// a thread takes, or whether the weights were decoded on the fly or ahead of time:
///
/// 1. The row is read 64 columns at a time as four 16-lane f32 vectors (`BlockDecoder`)
///    in the lane order of its format (`LaneOrder`); the activations are prepared in the
///    same order. Weights are widened exactly (bf16 by a shift, E4M3 by a bit move).
/// 2. One 16-lane accumulator takes the four vectors' products in turn (fused
///    multiply-adds), block after block.
/// 3. `reduce` folds the accumulator in halves (16 → 8 → 4 → 2 → 1).
/// 4. Tail columns (past the last whole block) are added one by one, fused, in column order.
/// 5. E4M3 results are multiplied by 2⁵⁶ (see `FP8Decoder`).
///
/// Activations are never rounded: a bf16 or FP8 weight meets its f32 activation in f32.
/// So a token's logits are bit-for-bit the same alone, in any batch, in any chunk of a
/// prompt and on any number of threads. Where the CPU has AVX-512F and BW, `ExactRowsAVX512`
/// runs the same order with wider registers and larger register blocks (`ExactKernel`).
enum ExactRows {
    /// Columns per block: four vectors of 16.
    static let block = 64

    /// Folds a vector in halves: the one horizontal sum order.
    @inline(__always)
    static func reduce(_ v: SIMD16<Float>) -> Float {
        let a = v.lowHalf + v.highHalf
        let b = a.lowHalf + a.highHalf
        let c = b.lowHalf + b.highHalf
        return c[0] + c[1]
    }

    /// `y[t, r]` for `rows` of the matrix stored as `storage` (`cols` wide) and every token.
    /// `x` holds the activations as `prepare` left them (rows `ldx` apart).
    static func rows(_ storage: WeightMatrix.Storage, cols: Int, _ rows: Range<Int>, prepared x: UnsafePointer<Float>, ldx: Int,
                     _ y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int, kernel: ExactKernel = .chosen) {
        guard KernelProfile.isOn else {
            return product(storage, cols: cols, rows, prepared: x, ldx: ldx, y, ldy: ldy, tokens: tokens, kernel: kernel)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        product(storage, cols: cols, rows, prepared: x, ldx: ldx, y, ldy: ldy, tokens: tokens, kernel: kernel)
        let weights = Double(rows.count * cols)
        ThreadScratch.current.profile.record(KernelPath(tokens: tokens, cols: cols), nanoseconds: DispatchTime.now().uptimeNanoseconds - start,
                                             flops: 2 * weights * Double(tokens), weightBytes: weights * Double(storage.bytesPerElement))
    }

    private static func product(_ storage: WeightMatrix.Storage, cols: Int, _ rows: Range<Int>, prepared x: UnsafePointer<Float>, ldx: Int,
                                _ y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int, kernel: ExactKernel) {
        switch storage {
        case .f32(let p):
            if kernel == .avx512 { return avx512(exact_f32, p, cols, rows, .shared(x, ldx), y, ldy, tokens, factor: 1) }
            run(F32Decoder(p: p, cols: cols), rows, x: x, ldx: ldx, y, ldy: ldy, tokens: tokens, factor: 1)
        case .bf16(let p):
            if kernel == .avx512 { return avx512(exact_bf16, p, cols, rows, .shared(x, ldx), y, ldy, tokens, factor: 1) }
            run(BF16Decoder(p: p, cols: cols), rows, x: x, ldx: ldx, y, ldy: ldy, tokens: tokens, factor: 1)
        case .fp8(let q):
            // Each row tile has its own column scales: they go into the activations.
            if kernel == .avx512 && tokens <= Int(EXACT_AVX512_TILED_TOKENS) && !rows.isEmpty {
                // Every tile's activations first, then one call for all the rows: a call per
                // tile restarted the kernel's four streams at every tile, 900 times a decode
                // step (one call: 1.03x the rate inside the products, 1.02x FP8 decode).
                let first = q.tile(ofRow: rows.lowerBound), last = q.tile(ofRow: rows.upperBound - 1)
                let scaled = ThreadScratch.current.scaled.floats((last - first + 1) * tokens * cols)
                for k in 0...(last - first) {
                    let row = max(rows.lowerBound, q.start(ofTile: first + k))
                    FP8Decoder.scale(q, row: row, cols: cols, x, ldx: ldx, tokens: tokens, by: 1, into: scaled + k * tokens * cols)
                }
                let input = exact_input(x: scaled, ldx: cols, tile_rows: q.blockRows, tile_origin: q.firstRow, tile_stride: tokens * cols)
                return avx512(exact_e4m3, q.bytes, cols, rows, input, y, ldy, tokens, factor: FP8.scaleFactor)
            }
            let decoder = FP8Decoder(q: q, cols: cols)
            let scaled = ThreadScratch.current.scaled.floats(tokens * cols)
            var r = rows.lowerBound
            while r < rows.upperBound {
                let tileEnd = min(rows.upperBound, q.start(ofTile: q.tile(ofRow: r) + 1))
                FP8Decoder.scale(q, row: r, cols: cols, x, ldx: ldx, tokens: tokens, by: kernel == .avx512 ? 1 : FP8.portableFactor, into: scaled)
                if kernel == .avx512 {
                    avx512(exact_e4m3, q.bytes, cols, r..<tileEnd, .shared(scaled, cols), y, ldy, tokens, factor: FP8.scaleFactor)
                } else {
                    run(decoder, r..<tileEnd, x: scaled, ldx: cols, y, ldy: ldy, tokens: tokens, factor: FP8.scaleFactor)
                }
                r = tileEnd
            }
        }
    }

    /// `run`'s order on 512-bit registers (`ExactRowsAVX512`, the same bits).
    @inline(__always)
    private static func avx512(_ format: exact_format, _ w: UnsafeRawPointer, _ cols: Int, _ rows: Range<Int>, _ x: exact_input,
                               _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ tokens: Int, factor: Float) {
        var decoded: UnsafeMutablePointer<Float>?, partial: UnsafeMutablePointer<Float>?
        if exact_avx512_tiles(tokens, cols) {
            let scratch = ThreadScratch.current
            decoded = scratch.decoded.floats(Int(EXACT_AVX512_CHUNK_ROWS) * cols)
            partial = scratch.partial.floats(Int(EXACT_AVX512_CHUNK_ROWS) * tokens * 16)
        }
        exact_avx512_rows(format, w, cols, rows.lowerBound, rows.upperBound, x, y, ldy, tokens, factor, decoded, partial)
    }

    /// How `w`'s kernel reads activations: in lane order, `perLane` weights to a lane, each
    /// times `factor`; nil for f32 rows, which read them as they are.
    struct ActivationOrder: Equatable {
        let perLane: Int
        let factor: Float
    }

    static func activationOrder(_ storage: WeightMatrix.Storage) -> ActivationOrder? {
        switch storage {
        case .f32: nil
        case .bf16: ActivationOrder(perLane: 2, factor: 1)
        // E4M3 rows also carry 2⁴⁸ (`FP8`); each row tile's scales follow in `rows`.
        case .fp8: ActivationOrder(perLane: 4, factor: FP8.activationFactor)
        }
    }

    /// `tokens` rows of `x` (`ldx` apart) in `order`, `cols` apart in `out`: whole blocks in
    /// lane order, the tail as it is, all times the factor.
    static func prepare(_ x: UnsafePointer<Float>, tokens: Int, ldx: Int, cols: Int, order: ActivationOrder,
                        into out: UnsafeMutablePointer<Float>, kernel: ExactKernel = .chosen) {
        let full = cols - cols % block
        for t in 0..<tokens {
            if kernel == .avx512 {
                exact_avx512_gather(x + t * ldx, cols, Int32(order.perLane), order.factor, out + t * cols)
            } else {
                LaneOrder.gather(x + t * ldx, cols: full, perLane: order.perLane, factor: order.factor, into: out + t * cols)
                for c in full..<cols { out[t * cols + c] = x[t * ldx + c] * order.factor }
            }
        }
    }

    /// Up to `streamedTokens` tokens decode weights as they stream them, four tokens per
    /// decoded block: the loads of the next weights overlap the multiply-adds, and a row
    /// stays in L1 for the next four tokens. More tokens (prefill) decode nine rows at a
    /// time into f32 once and share them, so decoding is paid once per row, not per four
    /// tokens; their compute then dwarfs the stall of reading the rows.
    static let streamedTokens = 16

    /// Whether `kernel` multiplies `tokens` tokens by rows `cols` wide in register tiles over
    /// decoded rows, rather than streaming the rows (the AVX-512 kernels also stream wide
    /// rows up to 32 tokens: `exact_avx512_tiles`). Rows in checkpoint formats: the portable
    /// kernel tiles f32 rows, which it reads in place, from two tokens on (`run`).
    static func tiles(tokens: Int, cols: Int, kernel: ExactKernel = .chosen) -> Bool {
        kernel == .avx512 ? exact_avx512_tiles(tokens, cols) : tokens > streamedTokens
    }

    @inline(__always)
    private static func run<D: BlockDecoder>(_ d: D, _ rows: Range<Int>, x: UnsafePointer<Float>, ldx: Int,
                                             _ y: UnsafeMutablePointer<Float>, ldy: Int, tokens: Int, factor: Float) {
        let cols = d.cols
        if tokens == 1 {
            var r = rows.lowerBound
            while r + 2 <= rows.upperBound {
                let s = dot2(d, r, x: x) * factor
                y[r] = s[0]
                y[r + 1] = s[1]
                r += 2
            }
            while r < rows.upperBound { y[r] = dot1(d, r, x: x) * factor; r += 1 }
            return
        }
        if tokens <= streamedTokens && d.direct == nil {
            for r in rows {
                var t = 0
                while t + 4 <= tokens {
                    let s = dotTokens4(d, r, x: x + t * ldx, ldx: ldx) * factor
                    for k in 0..<4 { y[(t + k) * ldy + r] = s[k] }
                    t += 4
                }
                while t < tokens { y[t * ldy + r] = dot1(d, r, x: x + t * ldx) * factor; t += 1 }
            }
            return
        }
        let chunk = 9
        let decoded = d.direct == nil ? ThreadScratch.current.decoded.floats(chunk * cols) : nil
        let partial = ThreadScratch.current.partial.floats(chunk * tokens * 16)
        let full = cols - cols % block
        for start in stride(from: rows.lowerBound, to: rows.upperBound, by: chunk) {
            let n = min(chunk, rows.upperBound - start)
            if let decoded { for i in 0..<n { d.decode(row: start + i, into: decoded + i * cols) } }
            func row(_ i: Int) -> UnsafePointer<Float> { decoded.map { UnsafePointer($0 + i * cols) } ?? d.direct! + (start + i) * cols }
            partial.update(repeating: 0, count: n * tokens * 16)
            // A slice of columns at a time, so that four tokens' activations and the rows'
            // weights stay in L1 while every row meets every token; each element's
            // accumulator waits in `partial` between slices, its order unchanged.
            for k0 in stride(from: 0, to: full, by: kSlice) {
                let k = k0..<min(k0 + kSlice, full)
                var t = 0
                while t + 4 <= tokens {
                    var i = 0
                    while i + 3 <= n {
                        accumulate3x4(row(i), rowStride: cols, k, x: x + t * ldx, ldx: ldx, into: partial + (i * tokens + t) * 16, accStride: tokens * 16)
                        i += 3
                    }
                    while i < n { accumulate4(row(i), k, x: x + t * ldx, ldx: ldx, into: partial + (i * tokens + t) * 16); i += 1 }
                    t += 4
                }
                while t < tokens {
                    for i in 0..<n { accumulate1(row(i), k, x: x + t * ldx, into: partial + (i * tokens + t) * 16) }
                    t += 1
                }
            }
            for i in 0..<n {
                let w = row(i)
                for t in 0..<tokens {
                    var s = reduce(UnsafeRawPointer(partial + (i * tokens + t) * 16).loadUnaligned(as: SIMD16<Float>.self))
                    for c in full..<cols { s.addProduct(w[c], x[t * ldx + c]) }
                    y[t * ldy + start + i] = s * factor
                }
            }
        }
    }

    /// Columns per slice of the several-token product: four tokens' activations and nine
    /// decoded rows of 256 columns take 13 KB of L1.
    static let kSlice = 256

    /// Rows `r` and `r + 1` with one token, decoding each block as it is read. Two rows
    /// keep the block's activations, both accumulators and a decoded block in the 16
    /// vector registers; four rows spilled to the stack and streamed slower.
    @inline(__always)
    private static func dot2<D: BlockDecoder>(_ d: D, _ r: Int, x: UnsafePointer<Float>) -> SIMD2<Float> {
        let cols = d.cols, full = cols - cols % block, xr = UnsafeRawPointer(x)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var c = 0
        while c < full {
            let x0 = xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self)
            let x1 = xr.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self)
            let x2 = xr.loadUnaligned(fromByteOffset: c * 4 + 128, as: SIMD16<Float>.self)
            let x3 = xr.loadUnaligned(fromByteOffset: c * 4 + 192, as: SIMD16<Float>.self)
            @inline(__always) func step(_ a: inout SIMD16<Float>, _ row: Int) {
                let (w0, w1, w2, w3) = d.block(row: row, column: c)
                a.addProduct(w0, x0)
                a.addProduct(w1, x1)
                a.addProduct(w2, x2)
                a.addProduct(w3, x3)
            }
            step(&a0, r)
            step(&a1, r + 1)
            c += block
        }
        var s = SIMD2<Float>(reduce(a0), reduce(a1))
        for c in full..<cols {
            for i in 0..<2 { s[i].addProduct(d.element(row: r + i, column: c), x[c]) }
        }
        return s
    }

    /// Row `r` with one token, in `dot2`'s order.
    @inline(__always)
    private static func dot1<D: BlockDecoder>(_ d: D, _ r: Int, x: UnsafePointer<Float>) -> Float {
        let cols = d.cols, full = cols - cols % block, xr = UnsafeRawPointer(x)
        var a = SIMD16<Float>()
        var c = 0
        while c < full {
            let (w0, w1, w2, w3) = d.block(row: r, column: c)
            a.addProduct(w0, xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
            a.addProduct(w1, xr.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self))
            a.addProduct(w2, xr.loadUnaligned(fromByteOffset: c * 4 + 128, as: SIMD16<Float>.self))
            a.addProduct(w3, xr.loadUnaligned(fromByteOffset: c * 4 + 192, as: SIMD16<Float>.self))
            c += block
        }
        var s = reduce(a)
        for c in full..<cols { s.addProduct(d.element(row: r, column: c), x[c]) }
        return s
    }

    /// Row `r` against four tokens' activations (`ldx` apart), each block decoded once for all four.
    @inline(__always)
    private static func dotTokens4<D: BlockDecoder>(_ d: D, _ r: Int, x: UnsafePointer<Float>, ldx: Int) -> SIMD4<Float> {
        let cols = d.cols, full = cols - cols % block
        let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx), x3 = UnsafeRawPointer(x + 3 * ldx)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        var c = 0
        while c < full {
            let (w0, w1, w2, w3) = d.block(row: r, column: c)
            @inline(__always) func step(_ a: inout SIMD16<Float>, _ xr: UnsafeRawPointer) {
                a.addProduct(w0, xr.loadUnaligned(fromByteOffset: c * 4, as: SIMD16<Float>.self))
                a.addProduct(w1, xr.loadUnaligned(fromByteOffset: c * 4 + 64, as: SIMD16<Float>.self))
                a.addProduct(w2, xr.loadUnaligned(fromByteOffset: c * 4 + 128, as: SIMD16<Float>.self))
                a.addProduct(w3, xr.loadUnaligned(fromByteOffset: c * 4 + 192, as: SIMD16<Float>.self))
            }
            step(&a0, x0)
            step(&a1, x1)
            step(&a2, x2)
            step(&a3, x3)
            c += block
        }
        var s = SIMD4<Float>(reduce(a0), reduce(a1), reduce(a2), reduce(a3))
        for c in full..<cols {
            let w = d.element(row: r, column: c)
            for k in 0..<4 { s[k].addProduct(w, x[k * ldx + c]) }
        }
        return s
    }

    /// Columns `k` of a decoded row `w` (the vectors of `BlockDecoder.block` one after
    /// another) against four tokens' activations, continuing the four accumulators at `acc`.
    @inline(__always)
    private static func accumulate4(_ w: UnsafePointer<Float>, _ k: Range<Int>, x: UnsafePointer<Float>, ldx: Int,
                                    into acc: UnsafeMutablePointer<Float>) {
        let wr = UnsafeRawPointer(w), ar = UnsafeMutableRawPointer(acc)
        let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx), x3 = UnsafeRawPointer(x + 3 * ldx)
        var a0 = ar.loadUnaligned(as: SIMD16<Float>.self), a1 = ar.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        var a2 = ar.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self), a3 = ar.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)
        var o = k.lowerBound * 4
        while o < k.upperBound * 4 {
            let v = wr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            a0.addProduct(v, x0.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
            a1.addProduct(v, x1.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
            a2.addProduct(v, x2.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
            a3.addProduct(v, x3.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
            o += 64
        }
        ar.storeBytes(of: a0, as: SIMD16<Float>.self)
        ar.storeBytes(of: a1, toByteOffset: 64, as: SIMD16<Float>.self)
        ar.storeBytes(of: a2, toByteOffset: 128, as: SIMD16<Float>.self)
        ar.storeBytes(of: a3, toByteOffset: 192, as: SIMD16<Float>.self)
    }

    /// Three rows against four tokens, one half of the 16 lanes at a time: each lane is a
    /// chain of its own, so splitting the lanes keeps every element's order, while twelve
    /// 8-lane accumulators, three weight vectors and one activation vector fill the 16
    /// AVX2 registers and seven loads feed twelve FMAs (one row against six tokens: eight
    /// loads for six: 51 GFLOP/s on one core for a 2816 × 1024 product of 128 tokens, this 54).
    @inline(__always)
    private static func accumulate3x4(_ w: UnsafePointer<Float>, rowStride: Int, _ k: Range<Int>, x: UnsafePointer<Float>, ldx: Int,
                                      into acc: UnsafeMutablePointer<Float>, accStride: Int) {
        let w0 = UnsafeRawPointer(w), w1 = UnsafeRawPointer(w + rowStride), w2 = UnsafeRawPointer(w + 2 * rowStride)
        let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx), x3 = UnsafeRawPointer(x + 3 * ldx)
        for half in 0..<2 {
            let r0 = UnsafeMutableRawPointer(acc + half * 8), r1 = r0 + accStride * 4, r2 = r1 + accStride * 4
            @inline(__always) func load(_ r: UnsafeMutableRawPointer, _ t: Int) -> SIMD8<Float> { r.loadUnaligned(fromByteOffset: t * 64, as: SIMD8<Float>.self) }
            var a00 = load(r0, 0), a01 = load(r0, 1), a02 = load(r0, 2), a03 = load(r0, 3)
            var a10 = load(r1, 0), a11 = load(r1, 1), a12 = load(r1, 2), a13 = load(r1, 3)
            var a20 = load(r2, 0), a21 = load(r2, 1), a22 = load(r2, 2), a23 = load(r2, 3)
            var o = k.lowerBound * 4 + half * 32
            while o < k.upperBound * 4 {
                let v0 = w0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                let v1 = w1.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                let v2 = w2.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                var xv = x0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                a00.addProduct(v0, xv); a10.addProduct(v1, xv); a20.addProduct(v2, xv)
                xv = x1.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                a01.addProduct(v0, xv); a11.addProduct(v1, xv); a21.addProduct(v2, xv)
                xv = x2.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                a02.addProduct(v0, xv); a12.addProduct(v1, xv); a22.addProduct(v2, xv)
                xv = x3.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                a03.addProduct(v0, xv); a13.addProduct(v1, xv); a23.addProduct(v2, xv)
                o += 64
            }
            @inline(__always) func store(_ a: SIMD8<Float>, _ r: UnsafeMutableRawPointer, _ t: Int) { r.storeBytes(of: a, toByteOffset: t * 64, as: SIMD8<Float>.self) }
            store(a00, r0, 0); store(a01, r0, 1); store(a02, r0, 2); store(a03, r0, 3)
            store(a10, r1, 0); store(a11, r1, 1); store(a12, r1, 2); store(a13, r1, 3)
            store(a20, r2, 0); store(a21, r2, 1); store(a22, r2, 2); store(a23, r2, 3)
        }
    }

    /// `accumulate4` for one token.
    @inline(__always)
    private static func accumulate1(_ w: UnsafePointer<Float>, _ k: Range<Int>, x: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>) {
        let wr = UnsafeRawPointer(w), xr = UnsafeRawPointer(x), ar = UnsafeMutableRawPointer(acc)
        var a = ar.loadUnaligned(as: SIMD16<Float>.self)
        var o = k.lowerBound * 4
        while o < k.upperBound * 4 {
            a.addProduct(wr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self), xr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
            o += 64
        }
        ar.storeBytes(of: a, as: SIMD16<Float>.self)
    }
}

/// Which code runs `ExactRows`' order: both give the same bits.
enum ExactKernel: String {
    /// Swift SIMD code, compiled for AVX2 and FMA on x86 (and for any other CPU).
    case portable
    /// C with AVX-512 intrinsics (`ExactRowsAVX512`): twice the register width and twice
    /// the registers to block with.
    case avx512

    /// AVX-512 where the CPU has it; `CONCLAVE_EXACT_KERNEL=portable` forces the Swift code
    /// (to measure one against the other).
    static let chosen: ExactKernel = {
        let asked = ProcessInfo.processInfo.environment["CONCLAVE_EXACT_KERNEL"].flatMap(ExactKernel.init(rawValue:))
        return asked == .portable || !avx512Supported ? .portable : .avx512
    }()

    static let avx512Supported = exact_avx512_supported()
}

/// A weight format as the exact kernels read it: a row's 64 columns from `column` as four
/// f32 vectors in the format's lane order, and single tail columns.
protocol BlockDecoder {
    var cols: Int { get }
    /// The rows themselves when they are f32 already (nothing to decode).
    var direct: UnsafePointer<Float>? { get }
    func block(row: Int, column: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)
    func element(row: Int, column: Int) -> Float
}

extension BlockDecoder {
    /// Row `row` as f32, blocks then tail: what `block` and `element` return, stored.
    @inline(__always)
    func decode(row: Int, into out: UnsafeMutablePointer<Float>) {
        let full = cols - cols % ExactRows.block, o = UnsafeMutableRawPointer(out)
        var c = 0
        while c < full {
            let (w0, w1, w2, w3) = block(row: row, column: c)
            o.storeBytes(of: w0, toByteOffset: c * 4, as: SIMD16<Float>.self)
            o.storeBytes(of: w1, toByteOffset: c * 4 + 64, as: SIMD16<Float>.self)
            o.storeBytes(of: w2, toByteOffset: c * 4 + 128, as: SIMD16<Float>.self)
            o.storeBytes(of: w3, toByteOffset: c * 4 + 192, as: SIMD16<Float>.self)
            c += ExactRows.block
        }
        for c in full..<cols { out[c] = element(row: row, column: c) }
    }
}

/// f32 rows in natural order.
struct F32Decoder: BlockDecoder {
    let p: UnsafePointer<Float>
    let cols: Int
    var direct: UnsafePointer<Float>? { p }

    @inline(__always)
    func block(row: Int, column: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let r = UnsafeRawPointer(p + row * cols + column)
        return (r.loadUnaligned(as: SIMD16<Float>.self), r.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self),
                r.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self), r.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self))
    }

    @inline(__always)
    func element(row: Int, column: Int) -> Float { p[row * cols + column] }
}

/// bf16 weights read two at a time: a 32-bit lane holds element 2i in its low half and
/// 2i+1 in its high half, so their f32 values are the lane shifted left by 16 and the lane
/// with its low half cleared — two bit operations, no widening conversion. Activations are
/// put in that order once per product (`LaneOrder`, two weights per lane).
enum BF16Pairs {
    @inline(__always)
    static func split(_ lanes: SIMD16<UInt32>) -> (even: SIMD16<Float>, odd: SIMD16<Float>) {
        (unsafeBitCast(lanes &<< 16, to: SIMD16<Float>.self), unsafeBitCast(lanes & 0xFFFF_0000, to: SIMD16<Float>.self))
    }
}

/// bf16 rows, two weights per 32-bit lane (`BF16Pairs`), widened exactly.
struct BF16Decoder: BlockDecoder {
    let p: UnsafePointer<UInt16>
    let cols: Int
    var direct: UnsafePointer<Float>? { nil }

    @inline(__always)
    func block(row: Int, column: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let r = UnsafeRawPointer(p + row * cols + column)
        let (e0, o0) = BF16Pairs.split(r.loadUnaligned(as: SIMD16<UInt32>.self))
        let (e1, o1) = BF16Pairs.split(r.loadUnaligned(fromByteOffset: 64, as: SIMD16<UInt32>.self))
        return (e0, o0, e1, o1)
    }

    @inline(__always)
    func element(row: Int, column: Int) -> Float { BF16.toFloat(p[row * cols + column]) }
}

/// E4M3 rows, four weights per lane (`FP8.split`), each `value · 2⁻¹²⁰` — exact, with
/// subnormal weights as f32 subnormals. The activations carry the tile's scale and 2⁶⁴
/// (`scale`), so products are normal f32; results are multiplied by 2⁵⁶. (The AVX-512
/// kernels widen to `value · 2⁻¹⁰⁴` and take the activations with 2⁴⁸: the same products.)
struct FP8Decoder: BlockDecoder {
    let q: FP8Blocks
    let cols: Int
    var direct: UnsafePointer<Float>? { nil }

    @inline(__always)
    func block(row: Int, column: Int) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        FP8.split(UnsafeRawPointer(q.bytes + row * cols + column).loadUnaligned(as: SIMD16<UInt32>.self))
    }

    @inline(__always)
    func element(row: Int, column: Int) -> Float {
        let b = UInt32(q.bytes[row * cols + column])
        return Float(bitPattern: ((b & 0x80) << 24) | ((b & 0x7F) << 20))
    }

    /// `tokens` rows of `x` (prepared: lane order, with 2⁴⁸; `ldx` apart) times the scales of
    /// the row tile of `row` and `power` (a power of two), `cols` apart in `out`. A 64-column
    /// block within one scale column (DeepSeek's 128 × 128 tiles) takes one factor; ragged
    /// tiles take one per column.
    static func scale(_ q: FP8Blocks, row: Int, cols: Int, _ x: UnsafePointer<Float>, ldx: Int, tokens: Int, by power: Float,
                      into out: UnsafeMutablePointer<Float>) {
        let scales = q.scaleRow(row), bc = q.blockCols, full = cols - cols % ExactRows.block
        // Scale columns a whole number of blocks wide (DeepSeek's 128) give each block one
        // factor (a decode step scales a thousand row tiles: no factor row to write and read
        // back); ragged ones a row of factors first, one per lane in the lanes' column order.
        let ragged = bc % ExactRows.block != 0
        withUnsafeTemporaryAllocation(of: Float.self, capacity: ragged ? full : 0) { buffer in
            let lanes = ragged ? UnsafeMutableRawPointer(buffer.baseAddress) : nil
            if let lanes {
                let factor = lanes.assumingMemoryBound(to: Float.self)
                for b in stride(from: 0, to: full, by: ExactRows.block) {
                    for i in 0..<16 {
                        for k in 0..<4 { factor[b + 16 * k + i] = scales[(b + 4 * i + k) / bc] * power }
                    }
                }
            }
            for t in 0..<tokens {
                let src = UnsafeRawPointer(x + t * ldx), dst = UnsafeMutableRawPointer(out + t * cols)
                for b in stride(from: 0, to: full, by: ExactRows.block) {
                    let block = SIMD16<Float>(repeating: scales[b / bc] * power)
                    for k in 0..<4 {
                        let at = (b + 16 * k) * 4
                        let f = lanes?.loadUnaligned(fromByteOffset: at, as: SIMD16<Float>.self) ?? block
                        dst.storeBytes(of: src.loadUnaligned(fromByteOffset: at, as: SIMD16<Float>.self) * f, toByteOffset: at, as: SIMD16<Float>.self)
                    }
                }
                for c in full..<cols { out[t * cols + c] = x[t * ldx + c] * (scales[c / bc] * power) }
            }
        }
    }
}

extension exact_input {
    /// Activations that every row reads.
    static func shared(_ x: UnsafePointer<Float>, _ ldx: Int) -> exact_input {
        exact_input(x: x, ldx: ldx, tile_rows: 0, tile_origin: 0, tile_stride: 0)
    }
}
