// transport-probe: a real multi-rank check of Transport and ControlPlane.
//
//     mpirun --oversubscribe -np 3 --mca btl self,vader transport-probe
//
// Every rank runs a blocking and a non-blocking all-to-all, broadcasts, a gather, a
// split, a ring of float messages and a Hello → Topology control exchange, checks every
// value, and prints `ok rank R of N`. Any failure prints the reason and aborts the world.
import ControlPlane
import Foundation
import Transport

/// Writes a line straight to the file descriptor: under mpirun stdout is a pipe, and
/// a buffered line could be lost when the world aborts.
func say(_ line: String, error: Bool = false) {
    (error ? FileHandle.standardError : FileHandle.standardOutput).write(Data((line + "\n").utf8))
}

struct ProbeFailure: Error, CustomStringConvertible {
    let description: String
}

func expect(_ condition: Bool, _ what: @autoclosure () -> String) throws {
    if !condition { throw ProbeFailure(description: what()) }
}

func run(_ world: Communicator) throws {
    let (rank, size) = (world.rank, world.size)

    // All-to-all: rank r sends d+1 floats to rank d, valued r·1000 + d·10 + k.
    let sendCounts = (0..<size).map { $0 + 1 }
    let recvCounts = [Int](repeating: rank + 1, count: size)
    let send = (0..<size).flatMap { d in (0...d).map { k in Float(rank * 1000 + d * 10 + k) } }
    let expected = (0..<size).flatMap { s in (0...rank).map { k in Float(s * 1000 + rank * 10 + k) } }
    var recv = [Float](repeating: -1, count: expected.count)
    try send.withUnsafeBufferPointer { s in
        try recv.withUnsafeMutableBufferPointer { r in
            try world.allToAllV(send: s, sendCounts: sendCounts, recv: r, recvCounts: recvCounts)
        }
    }
    try expect(recv == expected, "allToAllV received \(recv), expected \(expected)")

    // The same exchange, non-blocking, into buffers that outlive the request.
    let sendBuffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: send.count)
    let recvBuffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: expected.count)
    defer { sendBuffer.deallocate(); recvBuffer.deallocate() }
    _ = sendBuffer.initialize(from: send)
    recvBuffer.initialize(repeating: -1)
    let exchange = try world.startAllToAllV(send: UnsafeBufferPointer(sendBuffer), sendCounts: sendCounts,
                                            recv: recvBuffer, recvCounts: recvCounts)
    try exchange.wait()
    try expect(Array(recvBuffer) == expected, "startAllToAllV received \(Array(recvBuffer))")

    // Broadcast from the last rank.
    let root = size - 1
    let announced = try world.broadcast(bytes: rank == root ? Array("from rank \(root)".utf8) : [], root: root)
    try expect(announced == Array("from rank \(root)".utf8), "broadcast gave \(announced)")

    // Collectives over small values.
    let squares = try world.allgather(rank * rank)
    try expect(squares == (0..<size).map { $0 * $0 }, "allgather gave \(squares)")
    let gathered = try world.gather(bytes: [UInt8](repeating: UInt8(rank), count: rank), root: 0)
    if rank == 0 {
        try expect(gathered == (0..<size).map { [UInt8](repeating: UInt8($0), count: $0) }, "gather gave \(gathered)")
    }
    if let half = try world.split(color: rank % 2, key: rank) {
        try expect(half.size == (size + 1 - rank % 2) / 2 && half.rank == rank / 2, "split gave rank \(half.rank) of \(half.size)")
        try half.barrier()
        try half.free()
    } else {
        throw ProbeFailure(description: "split left rank \(rank) out")
    }

    // A ring of activations: each rank sends to the next and receives from the previous.
    let next = (rank + 1) % size, previous = (rank + size - 1) % size
    let outgoing = UnsafeMutableBufferPointer<Float>.allocate(capacity: 4)
    let incoming = UnsafeMutableBufferPointer<Float>.allocate(capacity: 8)
    defer { outgoing.deallocate(); incoming.deallocate() }
    _ = outgoing.initialize(from: (0..<4).map { Float(rank) + Float($0) / 4 })
    let receiving = try world.startReceiveFloats(into: incoming, from: previous, tag: 21)
    let sending = try world.startSendFloats(UnsafeBufferPointer(outgoing), to: next, tag: 21)
    try sending.wait()
    let arrived = try receiving.wait()
    try expect(arrived == 4 && Array(incoming.prefix(4)) == (0..<4).map { Float(previous) + Float($0) / 4 },
               "ring received \(arrived) floats: \(Array(incoming.prefix(arrived)))")

    // Control plane: every rank says Hello to rank 0, which answers with the Topology.
    let hello = Hello(rank: rank, host: MPIRuntime.processorName, role: rank == 0 ? .router : .expert,
                      experts: rank == 0 ? [] : [rank - 1], residentWeightBytes: 1 << 20, pid: Int(getpid()))
    let helloSend = try world.startSend(bytes: ControlMessage.hello(hello).encode(senderRank: rank), to: 0, tag: 1)
    var topologyBytes: [UInt8] = []
    if rank == 0 {
        var hellos: [Hello] = []
        for _ in 0..<size {
            let (bytes, source) = try world.receive(from: Communicator.anySource, tag: 1, timeout: 30)
            guard case .hello(let h) = try ControlMessage.decode(bytes, from: source) else {
                throw ProbeFailure(description: "rank \(source) sent something other than Hello")
            }
            hellos.append(h)
        }
        let topology = Topology(worldSize: size, ranks: hellos.map { RankAssignment(rank: $0.rank, role: $0.role, experts: $0.experts, host: $0.host) },
                                modelName: "probe", modelHash: "none", numHiddenLayers: 1, numRoutedExperts: max(size - 1, 1))
        topologyBytes = try ControlMessage.topology(topology).encode(senderRank: 0)
    }
    try helloSend.wait()
    topologyBytes = try world.broadcast(bytes: topologyBytes, root: 0)
    guard case .topology(let topology) = try ControlMessage.decode(topologyBytes, from: 0) else {
        throw ProbeFailure(description: "broadcast was not a Topology")
    }
    let mine = topology.assignment(of: rank)
    try expect(topology.worldSize == size && mine?.role == hello.role && mine?.experts == hello.experts,
               "topology disagrees with rank \(rank)'s Hello: \(topology)")
    try world.barrier()
}

let world: Communicator
do {
    world = try MPIRuntime.start()
} catch {
    say("transport-probe: cannot start MPI: \(error)", error: true)
    exit(1)
}
do {
    try run(world)
    say("ok rank \(world.rank) of \(world.size)")
    try world.barrier()
    try MPIRuntime.finalize()
} catch {
    say("transport-probe rank \(world.rank) of \(world.size): \(error)", error: true)
    MPIRuntime.abort(code: 1)
}
