import Checkpoint
import Foundation
import Synchronization

extension ShardManifest {
    /// Checks, before rank `rank` loads anything, that `directory` is the shard its node needs
    /// and is intact: cut for this job's layout, serving this rank in the same role with the same
    /// experts, listing every tensor the rank loads (`RankTensors`), and every file the rank reads
    /// (config.json, the index, the safetensors files holding its tensors, and for the router —
    /// rank 0, which tokenizes — the tokenizer and generation files) having the recorded size and,
    /// when `checksums`, SHA-256. `host` is where the rank runs.
    public func check(rank: Int, layout: ClusterLayout, config: ModelConfig, directory: URL, host: String,
                      checksums: Bool) throws(ShardCheckError) {
        func failure(_ file: String, _ problem: ShardCheckError.Problem) -> ShardCheckError {
            ShardCheckError(node: self.host, host: host, file: file, problem: problem)
        }
        let manifestPath = directory.appendingPathComponent(Self.fileName).path
        guard worldSize == layout.worldSize else {
            throw failure(manifestPath, .otherWorldSize(shard: worldSize, job: layout.worldSize))
        }
        let wanted = Rank(rank: rank, layout: layout, config: config)
        guard ranks.contains(wanted) else { throw failure(manifestPath, .otherRanks(held: ranks, wanted: wanted)) }
        let needed = RankTensors(role: wanted.role, experts: wanted.experts(layer:), config: config, available: tensorNames)
        guard needed.missing.isEmpty else { throw failure(manifestPath, .missingTensors(needed.missing, rank: wanted)) }

        let neededNames = Set(needed.names)
        let read = files.filter { file in
            file.tensors.map { !neededNames.isDisjoint(with: $0) }
                ?? (wanted.role == .router || file.name == Checkpoint.configFile || file.name == Checkpoint.indexFile)
        }
        // Sizes first: cheap, and an interrupted copy is the usual damage.
        for file in read {
            let path = directory.appendingPathComponent(file.name).path
            var st = stat()
            guard stat(path, &st) == 0 else { throw failure(path, errno == ENOENT ? .missingFile : .unreadable(String(cString: strerror(errno)))) }
            guard Int(st.st_size) == file.bytes else { throw failure(path, .size(actual: Int(st.st_size), recorded: file.bytes)) }
        }
        guard checksums else { return }
        // Hash the files in parallel: a node's share of a real model is tens of GB.
        let digests = Mutex<[Int: Result<String, FileDigestError>]>([:])
        DispatchQueue.concurrentPerform(iterations: read.count) { index in
            let url = directory.appendingPathComponent(read[index].name)
            let digest = Result { () throws(FileDigestError) in try FileDigest.sha256(of: url) }
            digests.withLock { $0[index] = digest }
        }
        let results = digests.withLock { $0 }
        for (index, file) in read.enumerated() {
            let path = directory.appendingPathComponent(file.name).path
            switch results[index]! {
            case .success(let digest) where digest != file.sha256:
                throw failure(path, .checksum(actual: digest, recorded: file.sha256))
            case .failure(let error):
                throw failure(path, .unreadable(error.reason))
            case .success:
                continue
            }
        }
    }
}

/// A node's shard that a rank cannot start from: one line naming the node the shard was cut
/// for, the host the rank runs on, the file, and what to do about it.
public struct ShardCheckError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        case unreadable(String)
        /// The manifest is not one this conclave reads.
        case invalid(String)
        /// Cut for a job of another size.
        case otherWorldSize(shard: Int, job: Int)
        /// The manifest does not serve the rank as the layout places it.
        case otherRanks(held: [ShardManifest.Rank], wanted: ShardManifest.Rank)
        /// Tensors the rank needs that the manifest does not list.
        case missingTensors([String], rank: ShardManifest.Rank)
        case missingFile
        case size(actual: Int, recorded: Int)
        case checksum(actual: String, recorded: String)
    }

    /// The node the shard was cut for (the manifest's host), when the manifest could be read.
    public let node: String?
    /// Where the rank runs (MPI's processor name).
    public let host: String
    public let file: String
    public let problem: Problem

    public var description: String {
        let whose = node.map { "node \($0)'s shard" } ?? "shard"
        let where_ = node == host ? "" : " on host \(host)"
        let copyAgain = "copy \(node.map { "node \($0)'s" } ?? "the node's") directory from conclave shard's output again"
        let what: String = switch problem {
        case .unreadable(let reason):
            "cannot be read: \(reason)"
        case .invalid(let reason):
            "is not a shard manifest this conclave reads: \(reason); cut the model again with conclave shard"
        case .otherWorldSize(let shard, let job):
            "was cut for a \(shard)-rank job, but this job has \(job) ranks; cut the model again with this job's hostfile and layout"
        case .otherRanks(let held, let wanted):
            "serves \(held.map(\.text).joined(separator: ", ")), not \(wanted.text): this is another node's directory, or the layout changed; give every node the directory conclave shard wrote for it"
        case .missingTensors(let names, let rank):
            "does not list \(names.count) tensor\(names.count == 1 ? "" : "s") that \(rank.text) loads (\(names.prefix(3).joined(separator: ", "))\(names.count > 3 ? ", …" : "")); cut the model again"
        case .missingFile:
            "is missing (the shard's manifest lists it); \(copyAgain)"
        case .size(let actual, let recorded):
            "is \(actual) bytes, but the shard's manifest records \(recorded): the copy is incomplete or damaged; \(copyAgain)"
        case .checksum(let actual, let recorded):
            "has SHA-256 \(actual.prefix(16))…, but the shard's manifest records \(recorded.prefix(16))…: the file is damaged or was replaced; \(copyAgain)"
        }
        return "\(whose)\(where_): \(file) \(what)"
    }
}
