/// How evenly load falls on expert ranks, as SGLang and vLLM report it for expert
/// parallelism: mean load per rank ÷ the largest. 1 is perfectly even; 1/n means one of n
/// ranks takes everything (the others wait for it). Loads are rows per expert rank in a
/// run's profile and metrics, or predicted tokens per rank in a placement plan.
public enum Balancedness {
    /// mean ÷ max of `loads`; 1 when there is nothing to balance (no ranks, or no load).
    public static func of(_ loads: some Collection<Double>) -> Double {
        guard let largest = loads.max(), largest > 0 else { return 1 }
        return loads.reduce(0, +) / Double(loads.count) / largest
    }

    public static func of(_ loads: some Collection<Int>) -> Double {
        of(loads.map(Double.init))
    }
}
