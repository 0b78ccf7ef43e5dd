import BenchReport
import Testing

@Suite struct CPUInfoTests {
    /// Two processors of a Zen 5 guest, trimmed to the fields read and a few others.
    static let zen5 = """
        processor\t: 0
        vendor_id\t: AuthenticAMD
        cpu family\t: 26
        model\t\t: 2
        model name\t: AMD EPYC 9R45 96-Core Processor
        flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw avx512_bf16 avx512_vnni
        bugs\t\t: sysret_ss_attrs

        processor\t: 1
        vendor_id\t: AuthenticAMD
        cpu family\t: 26
        model\t\t: 2
        model name\t: AMD EPYC 9R45 96-Core Processor
        flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw avx512_bf16 avx512_vnni

        """

    @Test func readsTheFirstProcessorAndCountsThemAll() {
        let cpu = CPUInfo(cpuinfo: Self.zen5)
        #expect(cpu.modelName == "AMD EPYC 9R45 96-Core Processor")
        #expect(cpu.family == 26 && cpu.model == 2 && cpu.cores == 2)
        #expect(cpu.flags.contains("avx512_bf16") && !cpu.flags.contains("amx_bf16"))
        #expect(cpu.summary == "AMD EPYC 9R45 96-Core Processor, cpu family 26, model 2, 2 cores; avx2 avx512f avx512_bf16, no amx_bf16")
    }

    @Test func saysWhatItLacks() {
        #expect(CPUInfo(cpuinfo: "").summary == "unknown CPU; flags unknown")
        // An Arm kernel: no model name, family or flags line.
        let arm = CPUInfo(cpuinfo: "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n")
        #expect(arm.summary == "unknown CPU, 1 core; flags unknown")
        let avx2Only = CPUInfo(cpuinfo: "model name\t: Old Xeon\nflags\t\t: fma avx2\n")
        #expect(avx2Only.summary == "Old Xeon; avx2, no avx512f, no avx512_bf16, no amx_bf16")
    }
}

@Suite struct RooflineTests {
    @Test func decodeRooflineIsBandwidthOverBytesPerStepTimesTokens() {
        // bench-mid reads 283.5 MB per token; at 78.4 GB/s that allows 276.5 tokens/s.
        let b1 = Work(.bytes, perStep: 283.5e6)
        #expect(abs(b1.tokensPerSecond(at: 78.4e9) - 276.54) < 0.01)
        // Eight tokens sharing a step that reads 1 GB: 8 × 50 steps/s.
        let b8 = Work(.bytes, perStep: 1e9, tokensPerStep: 8)
        #expect(b8.tokensPerSecond(at: 50e9) == 400)
        #expect(b8.rate(at: 200) == 25e9)
    }

    @Test func decodeIsComparedWithTheMeanOfTheTwoSamples() {
        let bounds = Bound.bandwidth(before: 40e9, after: 60e9)
        #expect(bounds.map(\.capacity) == [40e9, 60e9, 50e9])
        #expect(bounds.map(\.isCompared) == [false, false, true])
        #expect(bounds.map(\.label) == ["bandwidth before: 40.0 GB/s", "bandwidth after: 60.0 GB/s", "roofline at their mean: 50.0 GB/s"])
    }

    @Test func prefillIsBoundedByComputePeaks() {
        // 2 FLOP per weight, 100 M weights per token: 400 GFLOP/s allows 2000 tokens/s.
        let work = Work(.flop, perStep: 2e8)
        #expect(work.tokensPerSecond(at: 400e9) == 2000)
        #expect(work.rate(at: 1000) == 200e9)
        #expect(Bound.peak("bf16 matmul peak, 2 threads", flopsPerSecond: 400e9).label == "bf16 matmul peak, 2 threads: 400.0 GFLOP/s")
    }
}

@Suite struct BenchTableTests {
    @Test func testRowsCarryEveryBoundWithTheRateAndItsFraction() {
        let prefill = BenchTest(name: "pp128", tokensPerSecond: [900, 1100], work: Work(.flop, perStep: 2e8),
                                bounds: [.peak("f32 FMA peak, 2 threads", flopsPerSecond: 100e9), .peak("bf16 matmul peak, 2 threads", flopsPerSecond: 400e9)])
        let decode = BenchTest(name: "tg32 b1", tokensPerSecond: [150], work: Work(.bytes, perStep: 200e6),
                               bounds: Bound.bandwidth(before: 40e9, after: 60e9))
        #expect(BenchTable.tests([prefill, decode]) == [
            "| test | tokens/s | ± | work | implied | bounded by | bound, tokens/s | of bound |",
            "|---|---:|---:|---:|---:|---|---:|---:|",
            "| pp128 | 1000.0 | 141.4 | 200.0 MFLOP/token | 200.0 GFLOP/s | f32 FMA peak, 2 threads: 100.0 GFLOP/s | 500.0 | 200% |",
            "|  |  |  |  |  | bf16 matmul peak, 2 threads: 400.0 GFLOP/s | 2000.0 | 50% |",
            "| tg32 b1 | 150.0 | 0.0 | 200.0 MB/step | 30.0 GB/s | bandwidth before: 40.0 GB/s | 200.0 |  |",
            "|  |  |  |  |  | bandwidth after: 60.0 GB/s | 300.0 |  |",
            "|  |  |  |  |  | roofline at their mean: 50.0 GB/s | 250.0 | 60% |",
        ])
    }

    @Test func peaksHaveAColumnPerThreadCount() {
        #expect(BenchTable.peaks([("f32 FMA", [60e9, 118e9]), ("bf16 matmul", [nil, nil])], threads: [1, 2]) == [
            "| peak, GFLOP/s | 1 thread | 2 threads |",
            "|---|---:|---:|",
            "| f32 FMA | 60.0 | 118.0 |",
            "| bf16 matmul | n/a | n/a |",
        ])
    }
}

@Suite struct PathTableTests {
    /// Shares are of the threads' time (wall × threads), rates per thread inside the path.
    @Test func sharesAndPerThreadRates() {
        let test = PathTest(name: "pp128", threadSeconds: 4, paths: [
            .init(path: "17+ tokens, register tiles", calls: 10, seconds: 2, flops: 200e9, weightBytes: 4e9),
            .init(path: "1 token", calls: 3, seconds: 1, flops: 20e9, weightBytes: 10e9),
        ])
        #expect(BenchTable.paths([test], threadPeak: 200e9) == [
            "| test | kernel path | calls | of the threads' time | GFLOP/s per thread | of 1-thread f32 FMA peak | weight GB/s per thread |",
            "|---|---|---:|---:|---:|---:|---:|",
            "| pp128 | 17+ tokens, register tiles | 10 | 50% | 100.0 | 50% | 2.0 |",
            "|  | 1 token | 3 | 25% | 20.0 | 10% | 10.0 |",
        ])
    }
}
