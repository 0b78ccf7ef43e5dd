import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import OpenAIAPI
import Prometheus
import Serving
import ServiceLifecycle

/// How the front end listens and what it accepts.
public struct ServerOptions: Sendable {
    public var host: String
    public var port: Int
    /// When set, `/v1/` routes need `Authorization: Bearer <key>`.
    public var apiKey: String?
    /// Larger request bodies get 413.
    public var maxBodyBytes: Int
    /// On SIGTERM/SIGINT, running requests may finish for this long before they are cut.
    public var drainSeconds: Double

    public init(host: String, port: Int, apiKey: String?, maxBodyBytes: Int, drainSeconds: Double) {
        self.host = host
        self.port = port
        self.apiKey = apiKey
        self.maxBodyBytes = maxBodyBytes
        self.drainSeconds = drainSeconds
    }
}

/// The OpenAI-compatible HTTP front end (Hummingbird): routes to the completion handler,
/// health, model list and Prometheus metrics; runs as a service group that owns SIGTERM
/// and SIGINT, draining the engine before the listener closes.
public final class OpenAIServer: Sendable {
    public let engine: ServingEngine
    public let model: ServedModel
    public let options: ServerOptions
    public let registry: PrometheusCollectorRegistry
    let metricsFactory: PrometheusMetricsFactory
    let logger: Logger
    private let group = LockedGroup()

    /// A Prometheus registry and the metrics factory that writes to it; the engine's
    /// `ServingMetrics` should use the same factory.
    public static func makeMetricsFactory() -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
        let latency: [Duration] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120].map { .milliseconds($0 * 1000) }
        let perToken: [Duration] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5].map { .milliseconds($0 * 1000) }
        factory.defaultDurationHistogramBuckets = latency
        factory.durationHistogramBuckets["conclave_time_per_output_token_seconds"] = perToken
        factory.durationHistogramBuckets["conclave_step_seconds"] = perToken
        return factory
    }

    public init(engine: ServingEngine, model: ServedModel, options: ServerOptions, metricsFactory: PrometheusMetricsFactory, logger: Logger) {
        self.engine = engine
        self.model = model
        self.options = options
        self.metricsFactory = metricsFactory
        registry = metricsFactory.registry
        self.logger = logger
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: OpenAIErrorMiddleware(factory: metricsFactory, maxBodyBytes: options.maxBodyBytes))
        if let key = options.apiKey { router.add(middleware: APIKeyMiddleware(key: key)) }
        let completions = CompletionHandler(engine: engine, model: model, maxBodyBytes: options.maxBodyBytes, logger: logger)
        router.post("/v1/completions") { request, _ in try await completions.handle(request, endpoint: .completions) }
        router.post("/v1/chat/completions") { request, _ in try await completions.handle(request, endpoint: .chat) }
        router.get("/v1/models") { [model] _, _ in
            Response.json(ModelList([.init(id: model.name, created: model.created, ownedBy: "conclave")]))
        }
        router.get("/health") { [engine] _, _ in
            let state = engine.currentState
            return Response.json(["status": state.rawValue], status: state == .ready ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { [registry] _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        return router
    }

    /// Serves until SIGTERM/SIGINT (or `shutdown`): then drains the engine, closes the
    /// listener and returns. `onListening` gets the bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "conclave"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        let drain = EngineDrain(engine: engine, grace: options.drainSeconds, logger: logger)
        let services = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: drain)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        group.set(services)
        try await services.run()
    }

    /// Starts the same drain and shutdown a signal would (the engine failed, or the job ends).
    public func shutdown() async {
        await group.get()?.triggerGracefulShutdown()
    }
}

/// Lets the engine finish (or cut) its requests before the listener closes: the service
/// group shuts services down in reverse order, so this runs before the HTTP server stops.
struct EngineDrain: Service {
    let engine: ServingEngine
    let grace: Double
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let load = engine.currentLoad
        logger.info("draining: \(load.running) running, \(load.waiting) waiting; cut after \(grace) s")
        await engine.drain(grace: grace)
        logger.info("drained; closing the listener")
    }
}

/// The running service group, set once it exists.
private final class LockedGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var group: ServiceGroup?

    func set(_ g: ServiceGroup) { lock.withLock { group = g } }
    func get() -> ServiceGroup? { lock.withLock { group } }
}
