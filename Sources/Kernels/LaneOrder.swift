/// The column order of weights packed several to a 32-bit lane. A 64-byte load of packed
/// weights splits into `perLane` vectors, vector `k` holding the `k`-th weight of every
/// lane, so in each block of `16 · perLane` columns, column `perLane · i + k` is read at
/// position `16 · k + i`. Activations are put in that order once per product (`gather`);
/// a ragged tail keeps its order.
enum LaneOrder {
    /// `out` = `x · factor` in lane order.
    static func gather(_ x: UnsafePointer<Float>, cols: Int, perLane: Int, factor: Float = 1, into out: UnsafeMutablePointer<Float>) {
        let block = 16 * perLane, blocks = cols - cols % block
        for b in stride(from: 0, to: blocks, by: block) {
            for i in 0..<16 {
                for k in 0..<perLane { out[b + 16 * k + i] = x[b + perLane * i + k] * factor }
            }
        }
        for c in blocks..<cols { out[c] = x[c] * factor }
    }
}
