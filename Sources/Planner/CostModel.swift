import Foundation

/// The constants that turn bytes into seconds. Defaults are this project's measurements
/// on one machine (decode streams weights at ~85% of the measured bandwidth); the test
/// bed's calibration (`tools/calibrate-planner`) refits the network ones and writes them
/// as JSON for `conclave plan --calibration FILE`.
public struct CostModel: Codable, Sendable, Equatable {
    /// Fraction of a node's memory bandwidth a decode step achieves streaming weights.
    public var memoryEfficiency: Double
    /// Fraction of the link rate an all-to-all payload achieves.
    public var linkEfficiency: Double
    /// Fixed seconds per message hop (MPI over TCP, the peers' wake-up), per MoE layer and hop.
    public var messageLatency: Double
    /// Fixed seconds per decoder layer and step (thread hand-offs, small kernels): what
    /// dominates small models and disappears in large ones.
    public var layerOverhead: Double
    /// Where these came from (a command and date, or "defaults").
    public var source: String

    public static let defaults = CostModel(memoryEfficiency: 0.85, linkEfficiency: 0.9, messageLatency: 60e-6, layerOverhead: 100e-6,
                                           source: "defaults")

    public init(memoryEfficiency: Double, linkEfficiency: Double, messageLatency: Double, layerOverhead: Double, source: String) {
        self.memoryEfficiency = memoryEfficiency
        self.linkEfficiency = linkEfficiency
        self.messageLatency = messageLatency
        self.layerOverhead = layerOverhead
        self.source = source
    }

    enum CodingKeys: String, CodingKey {
        case memoryEfficiency = "memory_efficiency", linkEfficiency = "link_efficiency"
        case messageLatency = "message_latency_seconds", layerOverhead = "layer_overhead_seconds", source
    }

    /// Seconds for one MoE layer's all-to-all: the four hops (attention → router, dispatch,
    /// combine, router → attention), the busiest link carrying `bytes` (`nil` rate: the
    /// peers share a node, no link).
    public func exchangeSeconds(bytes: Double, linkRate: Double?) -> Double {
        4 * messageLatency + (linkRate.map { bytes / ($0 * linkEfficiency) } ?? 0)
    }
}
