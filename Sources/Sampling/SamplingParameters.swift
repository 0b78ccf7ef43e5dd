/// How to pick the next token from the logits.
public struct SamplingParameters: Sendable, Hashable {
    /// Divides the logits before softmax; 0 means greedy (argmax).
    public var temperature: Float
    /// Keep only the k most likely tokens; 0 keeps all.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches
    /// topP (nucleus sampling); 1 keeps all.
    public var topP: Float
    /// Same seed, parameters and logits give the same tokens.
    public var seed: UInt64

    public static let greedy = SamplingParameters(temperature: 0)

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public func validate() throws(SamplingError) {
        guard temperature.isFinite && temperature >= 0 else { throw .invalidTemperature(temperature) }
        guard topK >= 0 else { throw .negativeTopK(topK) }
        guard topP > 0 && topP <= 1 else { throw .topPOutOfRange(topP) }
    }
}

public enum SamplingError: Error, Equatable, CustomStringConvertible {
    case invalidTemperature(Float)
    case negativeTopK(Int)
    case topPOutOfRange(Float)

    public var description: String {
        switch self {
        case .invalidTemperature(let value):
            "temperature \(value) is invalid: use 0 for greedy decoding or a positive finite value"
        case .negativeTopK(let value):
            "top-k \(value) is negative: use 0 to disable top-k or a positive count of tokens to keep"
        case .topPOutOfRange(let value):
            "top-p \(value) is outside (0, 1]: use 1 to disable nucleus sampling"
        }
    }
}
