internal import CMPI
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's MPI library: started once, finalised once.
public enum MPIRuntime {
    /// The world communicator once MPI is started in this process.
    private static let world = Mutex<Communicator?>(nil)

    /// Starts MPI with `MPI_THREAD_MULTIPLE` (any thread may call MPI) and makes MPI
    /// errors on the world communicator come back as `TransportError`s instead of
    /// aborting. Safe to call more than once: later calls return the same communicator.
    /// Without `mpirun` the process starts as a singleton world of size 1.
    public static func start() throws -> Communicator {
        try world.withLock { world in
            if let world { return world }
            var flag: Int32 = 0
            try check(MPI_Finalized(&flag), "MPI_Finalized")
            if flag != 0 { throw TransportError.unavailable("MPI was already finalised in this process; it cannot be started again") }
            try check(MPI_Initialized(&flag), "MPI_Initialized")
            if flag == 0 {
                var provided: Int32 = 0
                try check(MPI_Init_thread(nil, nil, conclave_thread_multiple(), &provided), "MPI_Init_thread")
                if provided < conclave_thread_multiple() {
                    throw TransportError.unavailable("MPI provides thread level \(provided), not MPI_THREAD_MULTIPLE (\(conclave_thread_multiple()))")
                }
            }
            try check(MPI_Comm_set_errhandler(conclave_comm_world(), conclave_errors_return()), "MPI_Comm_set_errhandler")
            let communicator = try Communicator(handle: conclave_comm_world())
            world = communicator
            return communicator
        }
    }

    /// Whether MPI has been started and not yet finalised.
    public static var isStarted: Bool { world.withLock { $0 != nil } }

    /// Shuts MPI down. Every rank must call it; no MPI call may follow, and MPI cannot
    /// be started again in this process.
    public static func finalize() throws {
        try world.withLock { world in
            guard world != nil else { return }
            world = nil
            try check(MPI_Finalize(), "MPI_Finalize")
        }
    }

    /// Ends every rank of the world with `code` (use when one rank cannot go on and the
    /// others would wait for it forever).
    public static func abort(code: Int32 = 1) -> Never {
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        if flag != 0 { MPI_Abort(conclave_comm_world(), code) }
        exit(code)
    }

    /// Whether this process was launched by `mpirun`/a PMIx launcher (it has the
    /// launcher's environment). A singleton start adds these variables too, so this is
    /// only meaningful before `start()`.
    public static var isRunningUnderMPI: Bool {
        getenv("OMPI_COMM_WORLD_SIZE") != nil || getenv("PMIX_RANK") != nil
    }

    /// The number of ranks mpirun started, readable before MPI starts (1 without mpirun).
    public static var launchedWorldSize: Int {
        getenv("OMPI_COMM_WORLD_SIZE").flatMap { Int(String(cString: $0)) } ?? 1
    }

    /// The name MPI gives this node (the host name before MPI is started).
    public static var processorName: String {
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        var buffer = [CChar](repeating: 0, count: Int(conclave_max_processor_name()) + 1)
        if flag != 0 {
            var length: Int32 = 0
            if MPI_Get_processor_name(&buffer, &length) == conclave_success() {
                return cString(buffer, length: Int(length))
            }
        }
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return cString(buffer)
    }
}
