import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The limits on how much memory this process may pin, read when weights are about to be locked.
public struct MemoryLimits: Sendable, Equatable {
    /// RLIMIT_MEMLOCK's soft limit in bytes; nil when unlimited.
    public var lockLimit: Int?
    /// Whether the process holds CAP_IPC_LOCK, which lifts RLIMIT_MEMLOCK.
    public var mayExceedLockLimit: Bool
    /// Bytes this process had locked already (`VmLck`).
    public var alreadyLocked: Int
    /// The memory cgroup's limit, when one is set and readable.
    public var cgroup: CgroupMemory?

    public init(lockLimit: Int?, mayExceedLockLimit: Bool, alreadyLocked: Int, cgroup: CgroupMemory?) {
        self.lockLimit = lockLimit
        self.mayExceedLockLimit = mayExceedLockLimit
        self.alreadyLocked = alreadyLocked
        self.cgroup = cgroup
    }

    /// This process's limits now.
    public static func current() -> MemoryLimits {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue)
        #else
        let resource = RLIMIT_MEMLOCK
        #endif
        // RLIM_INFINITY is all ones (its C macro does not import).
        let lockLimit: Int? = getrlimit(resource, &limit) == 0 && limit.rlim_cur != rlim_t.max ? Int(clamping: limit.rlim_cur) : nil
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        func field(_ key: String) -> Substring? {
            status.split(separator: "\n").first { $0.hasPrefix(key + ":") }?.dropFirst(key.count + 1).drop { $0 == " " || $0 == "\t" }
        }
        let lockedKiB = field("VmLck").flatMap { Int($0.split(separator: " ").first ?? "") } ?? 0
        // CAP_IPC_LOCK is capability 14.
        let capabilities = field("CapEff").flatMap { UInt64($0, radix: 16) } ?? 0
        return MemoryLimits(lockLimit: lockLimit, mayExceedLockLimit: capabilities & (1 << 14) != 0,
                            alreadyLocked: lockedKiB * 1024, cgroup: CgroupMemory.current())
    }
}

/// A memory cgroup's limit, and how much of it holds memory the kernel cannot reclaim.
public struct CgroupMemory: Sendable, Equatable {
    /// Where the limit was read (a file, and for cgroup v1 the `memory.stat` key).
    public var limitSource: String
    /// The tightest limit on this cgroup and its ancestors.
    public var limit: Int
    /// Anonymous and locked (unevictable) memory charged to the cgroup: without swap, what
    /// locking must fit beside. Page cache is left out: the kernel reclaims it.
    public var pinned: Int?

    public init(limitSource: String, limit: Int, pinned: Int?) {
        self.limitSource = limitSource
        self.limit = limit
        self.pinned = pinned
    }

    /// Bytes that can still be locked under the limit.
    public var room: Int { limit - (pinned ?? 0) }

    /// The limit of this process's memory cgroup, or nil when there is none (v1 reports "no
    /// limit" as a huge number) or it cannot be read.
    static func current() -> CgroupMemory? {
        guard let membership = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[1].split(separator: ",").contains("memory") { return version1(path: String(fields[2])) }
            if fields[0] == "0" && fields[1].isEmpty, let found = version2(path: String(fields[2])) { return found }
        }
        return nil
    }

    /// cgroup v1: `memory.stat` has the hierarchy's limit and totals. Inside a container /proc
    /// may show the host's path: then the mount's root is the container's cgroup.
    private static func version1(path: String) -> CgroupMemory? {
        let root = "/sys/fs/cgroup/memory"
        guard let directory = [root + path, root].first(where: { FileManager.default.fileExists(atPath: $0 + "/memory.stat") }) else { return nil }
        let stat = statistics(directory + "/memory.stat")
        guard let limit = stat["hierarchical_memory_limit"], limit < 1 << 60 else { return nil }
        let pinned = ["total_inactive_anon", "total_active_anon", "total_unevictable"].map { stat[$0] }
        return CgroupMemory(limitSource: directory + "/memory.stat (hierarchical_memory_limit)", limit: limit,
                            pinned: pinned.contains(nil) ? nil : pinned.reduce(0) { $0 + $1! })
    }

    /// cgroup v2: the smallest `memory.max` from this cgroup up to the root.
    private static func version2(path: String) -> CgroupMemory? {
        let root = "/sys/fs/cgroup"
        var directory = root + path
        var tightest: (directory: String, limit: Int)?
        while directory.hasPrefix(root) {
            if let text = try? String(contentsOfFile: directory + "/memory.max", encoding: .utf8),
               let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit < tightest?.limit ?? .max {
                tightest = (directory, limit)
            }
            guard directory != root else { break }
            directory = (directory as NSString).deletingLastPathComponent
        }
        guard let tightest else { return nil }
        let stat = statistics(tightest.directory + "/memory.stat")
        let pinned = ["inactive_anon", "active_anon", "unevictable"].map { stat[$0] }
        return CgroupMemory(limitSource: tightest.directory + "/memory.max", limit: tightest.limit,
                            pinned: pinned.contains(nil) ? nil : pinned.reduce(0) { $0 + $1! })
    }

    /// `key value` lines of a cgroup `memory.stat`.
    private static func statistics(_ file: String) -> [String: Int] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        var values: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Int(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }
}

/// Weights could not be locked in memory (`--mlock`): the host cannot hold this process's share.
public struct WeightLockError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Cause: Sendable, Equatable {
        /// `mlock` failed with this errno.
        case system(Int32)
        /// The bytes do not fit the memory cgroup beside its unreclaimable memory: locking them
        /// would end in the OOM killer rather than an error.
        case cgroupLimit
    }

    /// Bytes this process set out to lock (whole pages).
    public let bytes: Int
    public let cause: Cause
    /// The limits when locking began.
    public let limits: MemoryLimits

    public init(bytes: Int, cause: Cause, limits: MemoryLimits) {
        self.bytes = bytes
        self.cause = cause
        self.limits = limits
    }

    /// One line: what could not be locked where, why, the limits in force and by how much the share exceeds them.
    public func message(host: String, rank: Int?) -> String {
        let reason = switch cause {
        case .system(let code): String(cString: strerror(code))
        case .cgroupLimit: "more than the memory cgroup allows"
        }
        var facts: [String] = []
        if let limit = limits.lockLimit {
            if limits.mayExceedLockLimit {
                facts.append("RLIMIT_MEMLOCK is \(Self.text(limit)) but does not apply (the process has CAP_IPC_LOCK)")
            } else {
                let short = limits.alreadyLocked + bytes - limit
                facts.append("RLIMIT_MEMLOCK is \(Self.text(limit))"
                             + (limits.alreadyLocked > 0 ? " with \(Self.text(limits.alreadyLocked)) already locked" : "")
                             + (short > 0 ? ": \(Self.text(short)) short; raise it (ulimit -l, or memlock in /etc/security/limits.conf) or run without --mlock" : ""))
            }
        } else {
            facts.append("RLIMIT_MEMLOCK is unlimited")
        }
        if cause == .cgroupLimit || cause == .system(ENOMEM), let cgroup = limits.cgroup {
            let short = bytes - cgroup.room
            facts.append("the memory cgroup's limit is \(Self.text(cgroup.limit)) (\(cgroup.limitSource))"
                         + (cgroup.pinned.map { " with \(Self.text($0)) of anonymous and locked memory" } ?? "")
                         + (short > 0 ? ": \(Self.text(short)) short" : ""))
        }
        let who = rank.map { " (rank \($0))" } ?? ""
        return "cannot lock \(bytes) bytes of weights in memory on \(host)\(who): \(reason); " + facts.joined(separator: "; ")
    }

    /// The message for this host, outside a cluster.
    public var description: String {
        var name = [UInt8](repeating: 0, count: 256)
        let host = gethostname(&name, name.count - 1) == 0 ? String(decoding: name.prefix { $0 != 0 }, as: UTF8.self) : "this host"
        return message(host: host, rank: nil)
    }

    /// `65536 bytes (0.1 MiB)`: exact, and readable at a glance.
    private static func text(_ bytes: Int) -> String {
        "\(bytes) bytes (\(String(format: "%.1f", Double(bytes) / 1_048_576)) MiB)"
    }
}
