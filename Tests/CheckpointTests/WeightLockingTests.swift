import Foundation
import Testing
@testable import Checkpoint
#if canImport(Glibc)
import Glibc
#endif

/// `storedBytes`, `weightFileBytes`, and locking mapped weights in RAM (`--mlock`).
@Suite struct WeightLocking {
    static let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// A bf16 matrix spanning several pages, a small f32 one, an FP8 one with its scale, and a norm.
    func writeModel(_ dir: URL, maxShardBytes: Int = 1 << 30) throws {
        let w = SafetensorsWriter()
        try w.add("big", shape: [64, 128], floats: (0..<8192).map { Float($0 % 251) }, as: .bf16)
        try w.add("small", shape: [2, 4], floats: (0..<8).map(Float.init), as: .f32)
        try w.add("w.f8", dtype: .f8E4M3, shape: [2, 4], bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        try w.add("w.f8_scale_inv", shape: [1, 1], floats: [2], as: .f32)
        try w.add("norm", shape: [4], floats: [1, 2, 3, 4], as: .f32)
        try w.writeCheckpoint(to: dir, maxShardBytes: maxShardBytes)
    }

    @Test func storedBytesAreTheFileBytesAndNotCountedAsLoaded() throws {
        try withTemporaryDirectory { dir in
            try writeModel(dir)
            let ck = try Checkpoint(directory: dir, config: fp8Config())
            let (info, bytes) = try ck.storedBytes(of: "w.f8")
            #expect(info.dtype == .f8E4M3 && info.shape == [2, 4])
            #expect(Array(bytes) == [1, 2, 3, 4, 5, 6, 7, 8])
            #expect(try ck.storedBytes(of: "small").bytes.count == 32)
            #expect(ck.loadStats == .init())
            #expect(throws: CheckpointError.self) { try ck.storedBytes(of: "absent") }
        }
    }

    @Test func weightFileBytesSumTheSafetensorsFiles() throws {
        for maxShardBytes in [1 << 30, 8 * 1024] {
            try withTemporaryDirectory { dir in
                try writeModel(dir, maxShardBytes: maxShardBytes)
                try writeConfig(to: dir)
                let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".safetensors") }
                #expect(files.count == (maxShardBytes == 8 * 1024 ? 2 : 1))
                let sizes = try files.reduce(0) { $0 + (try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($1).path)[.size] as! Int) }
                #expect(try Checkpoint(directory: dir).weightFileBytes() == sizes)
            }
        }
    }

    /// Whole pages around each tensor, merged where neighbours share a page.
    @Test func pageSpansCoverTheTensorsInWholePages() throws {
        try withTemporaryDirectory { dir in
            try writeModel(dir)
            let file = try SafetensorsFile(url: dir.appendingPathComponent(Checkpoint.singleFile))
            let all = file.pageSpans(of: file.tensorNames)
            #expect(all.count == 1, "adjacent tensors merge into one span: \(all)")
            #expect(all.allSatisfy { $0.lowerBound % Self.page == 0 && $0.upperBound % Self.page == 0 })
            #expect(all[0].lowerBound == 0 && all[0].upperBound >= file.fileSize)
            #expect(file.pageSpans(of: ["small"]).map(\.count) == [Self.page])
            #expect(file.pageSpans(of: ["absent"]).isEmpty)
        }
    }

    /// Only tensors handed out zero-copy are locked; a second checkpoint's pages are untouched.
    @Test func locksTheMappedTensorsPages() throws {
        try withTemporaryDirectory { dir in
            try writeModel(dir)
            let ck = try Checkpoint(directory: dir, config: fp8Config())
            #expect(try ck.lockMappedWeights() == 0)
            _ = try ck.matrix("big", rows: 64, cols: 128)
            _ = try ck.vector("norm", count: 4)
            let before = MemoryLimits.current().alreadyLocked
            let locked = try ck.lockMappedWeights()
            let file = try SafetensorsFile(url: dir.appendingPathComponent(Checkpoint.singleFile))
            #expect(locked == file.pageSpans(of: ["big"]).reduce(0) { $0 + $1.count })
            #expect(locked >= 64 * 128 * 2 && locked % Self.page == 0)
            #expect(MemoryLimits.current().alreadyLocked >= before + locked)
        }
    }

    static let limited = MemoryLimits(lockLimit: 65536, mayExceedLockLimit: false, alreadyLocked: 0, cgroup: nil)

    @Test func lockLimitMessageNamesHostRankLimitAndShortfall() {
        let error = WeightLockError(bytes: 4_730_880, cause: .system(ENOMEM), limits: Self.limited)
        let text = error.message(host: "node-b", rank: 2)
        #expect(text.hasPrefix("cannot lock 4730880 bytes of weights in memory on node-b (rank 2): Cannot allocate memory; "))
        #expect(text.contains("RLIMIT_MEMLOCK is 65536 bytes (0.1 MiB): 4665344 bytes (4.4 MiB) short"))
        #expect(text.contains("ulimit -l"))
        #expect(!text.contains("\n"))
    }

    @Test func memoryAlreadyLockedCountsAgainstTheLimit() {
        var limits = Self.limited
        limits.alreadyLocked = 32768
        let text = WeightLockError(bytes: 65536, cause: .system(ENOMEM), limits: limits).message(host: "h", rank: nil)
        #expect(text.hasPrefix("cannot lock 65536 bytes of weights in memory on h: "))
        #expect(text.contains("with 32768 bytes (0.0 MiB) already locked: 32768 bytes (0.0 MiB) short"))
    }

    @Test func cgroupLimitMessageGivesItsFileAndShortfall() {
        let source = "/sys/fs/cgroup/memory/job/memory.stat (hierarchical_memory_limit)"
        let cgroup = CgroupMemory(limitSource: source, limit: 1 << 30, pinned: 900 << 20)
        #expect(cgroup.room == 124 << 20)
        let limits = MemoryLimits(lockLimit: nil, mayExceedLockLimit: true, alreadyLocked: 0, cgroup: cgroup)
        let refused = WeightLockError(bytes: 200 << 20, cause: .cgroupLimit, limits: limits).message(host: "node-c", rank: 3)
        #expect(refused.contains("on node-c (rank 3): more than the memory cgroup allows; RLIMIT_MEMLOCK is unlimited"))
        #expect(refused.hasSuffix("the memory cgroup's limit is 1073741824 bytes (1024.0 MiB) (\(source)) "
                                  + "with 943718400 bytes (900.0 MiB) of anonymous and locked memory: 79691776 bytes (76.0 MiB) short"))
        // An errno other than ENOMEM is not the cgroup's doing.
        let again = WeightLockError(bytes: 200 << 20, cause: .system(EAGAIN), limits: limits).message(host: "node-c", rank: 3)
        #expect(!again.contains("cgroup"))
    }

    @Test func capIPCLockLiftsTheLimit() {
        var limits = Self.limited
        limits.mayExceedLockLimit = true
        let text = WeightLockError(bytes: 1 << 20, cause: .system(EAGAIN), limits: limits).message(host: "h", rank: 1)
        #expect(text.contains("does not apply (the process has CAP_IPC_LOCK)"))
        #expect(!text.contains("short"))
    }

    @Test func currentLimitsAreReadable() {
        let limits = MemoryLimits.current()
        #expect(limits.alreadyLocked >= 0)
        if let limit = limits.lockLimit { #expect(limit >= 0) }
        if let cgroup = limits.cgroup { #expect(cgroup.limit > 0 && cgroup.room <= cgroup.limit) }
    }
}
