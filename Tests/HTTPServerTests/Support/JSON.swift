import Foundation

/// A parsed JSON value that can cross tasks, with optional-chaining accessors for assertions:
/// `body["choices"]?[0]?["text"]?.string`.
enum JSON: Sendable, Equatable, Decodable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        if value.decodeNil() {
            self = .null
        } else if let b = try? value.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? value.decode(Double.self) {
            self = .number(n)
        } else if let s = try? value.decode(String.self) {
            self = .string(s)
        } else if let a = try? value.decode([JSON].self) {
            self = .array(a)
        } else {
            self = .object(try value.decode([String: JSON].self))
        }
    }

    /// Parses `data`, or nil when it is not JSON.
    static func parse(_ data: Data) -> JSON? {
        try? JSONDecoder().decode(JSON.self, from: data)
    }

    subscript(key: String) -> JSON? {
        if case .object(let fields) = self { fields[key] } else { nil }
    }

    subscript(index: Int) -> JSON? {
        if case .array(let items) = self, items.indices.contains(index) { items[index] } else { nil }
    }

    var string: String? { if case .string(let s) = self { s } else { nil } }
    var double: Double? { if case .number(let n) = self { n } else { nil } }
    var int: Int? { if case .number(let n) = self, n == n.rounded() { Int(n) } else { nil } }
    var array: [JSON]? { if case .array(let a) = self { a } else { nil } }
    var object: [String: JSON]? { if case .object(let o) = self { o } else { nil } }
    var isNull: Bool { self == .null }

    /// The elements of an array, each converted; nil when this is not an array or an element does not convert.
    var strings: [String]? { elements { $0.string } }
    var ints: [Int]? { elements { $0.int } }
    var doubles: [Double]? { elements { $0.double } }
    var objects: [[String: JSON]]? { elements { $0.object } }

    private func elements<T>(_ convert: (JSON) -> T?) -> [T]? {
        guard let items = array else { return nil }
        let converted = items.compactMap(convert)
        return converted.count == items.count ? converted : nil
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .number(let n): n == n.rounded() && abs(n) < 1e15 ? "\(Int(n))" : "\(n)"
        case .string(let s): "\"\(s)\""
        case .array(let a): "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o): "{" + o.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }
}
