import Foundation
import Testing
@testable import Checkpoint

/// Throughput of the load-time conversions; opt in with `CONCLAVE_BENCH=1`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CONCLAVE_BENCH"] != nil))
struct ConversionBenchmark {
    func seconds(_ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<5 {
            let t = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
        }
        return best
    }

    @Test func throughput() {
        let rows = 2048, cols = 7168, n = rows * cols  // one V3 expert's down_proj, transposed
        let q = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let halves = (0..<n).map { UInt16(truncatingIfNeeded: $0 &* 40_503) & 0x7BFF }
        let scales = [Float](repeating: 0.5, count: (rows / 128) * (cols / 128))
        var out = [Float](repeating: 0, count: n)
        let f8 = seconds {
            q.withUnsafeBufferPointer { src in
                scales.withUnsafeBufferPointer { s in
                    out.withUnsafeMutableBufferPointer { dst in
                        FloatConversion.dequantizeE4M3(src.baseAddress!, rows: rows, cols: cols, scales: s.baseAddress!,
                                                       block: .init(rows: 128, cols: 128), to: dst.baseAddress!)
                    }
                }
            }
        }
        let f16 = seconds {
            halves.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { FloatConversion.f16ToF32(src.baseAddress!, to: $0.baseAddress!, count: n) }
            }
        }
        let bf16 = seconds {
            halves.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { FloatConversion.bf16ToF32(src.baseAddress!, to: $0.baseAddress!, count: n) }
            }
        }
        func line(_ what: String, _ s: Double) -> String {
            String(format: "%-28@ %8.2f ms  %6.2f GB/s written", what as NSString, s * 1e3, Double(n * 4) / s / 1e9)
        }
        print(line("F8_E4M3 128×128 → f32", f8))
        print(line("F16 → f32", f16))
        print(line("BF16 → f32", bf16))
    }
}
