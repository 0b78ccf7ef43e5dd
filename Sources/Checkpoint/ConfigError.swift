/// Why a `config.json` cannot be served. Every case names the file and, where there is one, the field.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read.
    case unreadable(file: String, reason: String)
    /// The file is not a JSON object.
    case invalidJSON(file: String, reason: String)
    /// `architectures[0]` (or `model_type`) names a model this engine does not serve.
    case unsupportedArchitecture(String, file: String)
    /// A field that has no default is absent.
    case missingField(String, file: String)
    /// A field holds a value of the wrong JSON type.
    case wrongType(field: String, expected: String, found: String, file: String)
    /// A field's value is out of range or inconsistent with another field.
    case invalidValue(field: String, value: String, reason: String, file: String)
    /// A field names an option the engine does not implement.
    case unsupportedValue(field: String, value: String, supported: [String], file: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            "cannot read \(file): \(reason)"
        case .invalidJSON(let file, let reason):
            "\(file) is not a valid JSON object: \(reason)"
        case .unsupportedArchitecture(let name, let file):
            "\(file): architecture \"\(name)\" is not supported; supported: "
                + ModelConfig.Architecture.allCases.map { "\($0.rawValue) (model_type \($0.modelType))" }.joined(separator: ", ")
        case .missingField(let field, let file):
            "\(file): required field \(field) is missing"
        case .wrongType(let field, let expected, let found, let file):
            "\(file): field \(field) should be \(expected), found \(found)"
        case .invalidValue(let field, let value, let reason, let file):
            "\(file): field \(field) = \(value) is invalid: \(reason)"
        case .unsupportedValue(let field, let value, let supported, let file):
            "\(file): field \(field) = \(value) is not supported; supported: \(supported.joined(separator: ", "))"
        }
    }
}
