/// One MoE layer in one step, as the router saw it: what serving metrics report per layer.
public struct MoELayerSample: Sendable, Equatable {
    public var layer: Int
    public var dispatchSeconds: Double
    public var combineSeconds: Double
    /// Rows each expert rank received, by expert-rank index.
    public var rowsPerExpertRank: [Int]

    public init(layer: Int, dispatchSeconds: Double, combineSeconds: Double, rowsPerExpertRank: [Int]) {
        self.layer = layer
        self.dispatchSeconds = dispatchSeconds
        self.combineSeconds = combineSeconds
        self.rowsPerExpertRank = rowsPerExpertRank
    }
}

/// An executor that dispatches MoE layers to other ranks and can say what each cost.
public protocol ReportsMoELayers: AnyObject {
    /// Off by default, so runs that never read them keep none.
    var collectsLayerSamples: Bool { get set }
    /// The samples recorded since the last call.
    func takeMoELayerSamples() -> [MoELayerSample]
}
