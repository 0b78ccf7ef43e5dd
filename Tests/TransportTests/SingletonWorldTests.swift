import ControlPlane
import Testing
import Transport

/// MPI starts once per process: every test shares this world (a singleton of size 1, as
/// the tests run without mpirun) and none finalises it.
enum SharedWorld {
    static let result = Result { try MPIRuntime.start() }
    static func get() throws -> Communicator { try result.get() }
}

@Suite(.serialized) struct SingletonWorld {
    @Test func startsAsSingleton() throws {
        let world = try SharedWorld.get()
        #expect(world.rank == 0)
        #expect(world.size == 1)
        #expect(MPIRuntime.isStarted)
        let again = try MPIRuntime.start()
        #expect(again.rank == 0 && again.size == 1)
        #expect(!MPIRuntime.processorName.isEmpty)
    }

    @Test func allToAllVToSelf() throws {
        let world = try SharedWorld.get()
        let send: [Float] = [1, 2, 3, 4]
        var recv = [Float](repeating: 0, count: 5)
        try send.withUnsafeBufferPointer { s in
            try recv.withUnsafeMutableBufferPointer { r in
                try world.allToAllV(send: s, sendCounts: [3], recv: r, recvCounts: [3])
            }
        }
        #expect(recv == [1, 2, 3, 0, 0])
    }

    @Test func nonBlockingAllToAllVToSelf() throws {
        let world = try SharedWorld.get()
        let send = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: 3)
        let recv = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: 3)
        defer { send.deallocate(); recv.deallocate() }
        _ = send.initialize(from: [0x3F80, 0x4000, 0x4040])
        recv.initialize(repeating: 0)
        var counts = [3]
        let request = try world.startAllToAllV(send: UnsafeBufferPointer(send), sendCounts: counts, recv: recv, recvCounts: counts)
        counts[0] = 99  // the request owns its own copy of the counts
        try request.wait()
        #expect(request.isComplete)
        #expect(Array(recv) == [0x3F80, 0x4000, 0x4040])
    }

    @Test func allToAllVRejectsCountsThatDoNotFit() throws {
        let world = try SharedWorld.get()
        let send: [Float] = [1, 2]
        var recv = [Float](repeating: 0, count: 2)
        let cases: [([Int], [Int], String)] = [
            ([3], [2], "sendCounts add up to 3 elements but the buffer holds 2"),
            ([2], [2, 0], "recvCounts has 2 entries for 1 ranks"),
            ([-1], [2], "sendCounts[0] is -1, which is negative"),
        ]
        for (sendCounts, recvCounts, message) in cases {
            #expect(throws: TransportError.invalidArgument(operation: "MPI_Alltoallv", message: message)) {
                try send.withUnsafeBufferPointer { s in
                    try recv.withUnsafeMutableBufferPointer { r in
                        try world.allToAllV(send: s, sendCounts: sendCounts, recv: r, recvCounts: recvCounts)
                    }
                }
            }
        }
    }

    @Test func broadcastAndCollectives() throws {
        let world = try SharedWorld.get()
        let bytes: [UInt8] = Array("topology".utf8)
        #expect(try world.broadcast(bytes: bytes, root: 0) == bytes)
        #expect(try world.broadcast(bytes: [], root: 0) == [])
        var floats: [Float] = [1.5, -2]
        try floats.withUnsafeMutableBufferPointer { try world.broadcast($0, root: 0) }
        #expect(floats == [1.5, -2])
        #expect(try world.allgather(42) == [42])
        #expect(try world.gather(bytes: [7, 8], root: 0) == [[7, 8]])
        try world.barrier()
        #expect(throws: TransportError.self) { try world.broadcast(bytes: bytes, root: 1) }
    }

    @Test func split() throws {
        let world = try SharedWorld.get()
        let part = try #require(try world.split(color: 5, key: 0))
        #expect(part.rank == 0 && part.size == 1)
        try part.barrier()
        try part.free()
        #expect(try world.split(color: nil, key: 0) == nil)
        #expect(throws: TransportError.self) { try world.free() }
    }

    @Test func controlMessageToSelfViaNonBlockingSend() throws {
        let world = try SharedWorld.get()
        #expect(try world.poll(from: 0, tag: 3) == nil)
        let hello = ControlMessage.hello(Hello(rank: 0, host: MPIRuntime.processorName, role: .router, pid: 1))
        let request = try world.startSend(bytes: try hello.encode(senderRank: 0), to: 0, tag: 3)
        let probed = try world.probe(from: Communicator.anySource, tag: 3)
        #expect(probed.source == 0 && probed.tag == 3 && probed.byteCount > 0)
        let (bytes, source) = try world.receive(from: Communicator.anySource, tag: 3)
        try request.wait()
        #expect(source == 0)
        #expect(bytes.count == probed.byteCount)
        #expect(try ControlMessage.decode(bytes, from: source) == hello)
    }

    @Test func receiveWithTimeoutGetsAMessageThatIsThere() throws {
        let world = try SharedWorld.get()
        let payload = [UInt8](repeating: 9, count: 100_000)
        let request = try world.startSend(bytes: payload, to: 0, tag: 4)
        let (bytes, source) = try world.receive(from: 0, tag: 4, timeout: 5)
        #expect(try request.wait() == payload.count)
        #expect(source == 0 && bytes == payload)
    }

    @Test func floatsToSelf() throws {
        let world = try SharedWorld.get()
        let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: 6)
        let into = UnsafeMutableBufferPointer<Float>.allocate(capacity: 8)
        defer { out.deallocate(); into.deallocate() }
        _ = out.initialize(from: (0..<6).map(Float.init))
        into.initialize(repeating: -1)
        let receiving = try world.startReceiveFloats(into: into, from: 0, tag: 5)
        #expect(try receiving.test() == false)
        let sending = try world.startSendFloats(UnsafeBufferPointer(out), to: 0, tag: 5)
        #expect(try sending.wait() == 6)
        #expect(try receiving.wait() == 6)
        #expect(Array(into) == [0, 1, 2, 3, 4, 5, -1, -1])

        // Blocking receive of a message that is already there.
        let again = try world.startSendFloats(UnsafeBufferPointer(out), to: 0, tag: 6)
        #expect(try world.receiveFloats(into: into, from: 0, tag: 6, timeout: 5) == 6)
        try again.wait()
    }

    @Test func oversizedFloatMessageIsAnError() throws {
        let world = try SharedWorld.get()
        let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: 6)
        let small = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2)
        defer { out.deallocate(); small.deallocate() }
        _ = out.initialize(from: (0..<6).map(Float.init))
        small.initialize(repeating: 0)

        var sending = try world.startSendFloats(UnsafeBufferPointer(out), to: 0, tag: 7)
        #expect(throws: TransportError.truncated(operation: "receiveFloats", peer: 0, capacity: 2, received: 6)) {
            try world.receiveFloats(into: small, from: 0, tag: 7, timeout: 5)
        }
        try sending.wait()

        // The blocking path reports MPI's own error, which comes back instead of aborting.
        sending = try world.startSendFloats(UnsafeBufferPointer(out), to: 0, tag: 8)
        do {
            try world.receiveFloats(into: small, from: 0, tag: 8)
            Issue.record("an oversized message was received without error")
        } catch let error as TransportError {
            guard case .mpi(let op, let peer, _, let message) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(op == "MPI_Recv" && peer == 0)
            #expect(message.lowercased().contains("truncat"), "\(message)")
        }
        _ = try? sending.wait()
    }

    @Test func receiveThatNeverComesTimesOut() throws {
        let world = try SharedWorld.get()
        let clock = ContinuousClock()
        let start = clock.now
        #expect(throws: TransportError.timeout(peer: 0, operation: "receive", seconds: 0.2)) {
            try world.receive(from: 0, tag: 99, timeout: 0.2)
        }
        let elapsed = clock.now - start
        #expect(elapsed >= .milliseconds(200) && elapsed < .seconds(5))
        #expect(throws: TransportError.self) { try world.receive(from: Communicator.anySource, tag: 99, timeout: 0.05) }
        let description = TransportError.timeout(peer: 3, operation: "receive", seconds: 0.2).description
        #expect(description.contains("rank 3") && description.contains("0.2 s"))
    }

    @Test func badPeersAndTagsAreCaughtBeforeMPI() throws {
        let world = try SharedWorld.get()
        #expect(throws: TransportError.invalidArgument(operation: "MPI_Send", message: "rank 5 is outside 0..<1")) {
            try world.send(bytes: [1], to: 5, tag: 0)
        }
        #expect(throws: TransportError.invalidArgument(operation: "MPI_Send", message: "tag -3 is outside 0...32767")) {
            try world.send(bytes: [1], to: 0, tag: -3)
        }
    }
}
