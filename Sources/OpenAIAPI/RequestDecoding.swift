import Foundation

/// A JSON value a request field may hold, with the words an error uses for it.
protocol RequestValue: Decodable {
    /// Completes "'stop' must be …": "an integer", "a string or an array of strings".
    static var expectation: String { get }
}

extension Int: RequestValue { static var expectation: String { "an integer" } }
extension Int64: RequestValue { static var expectation: String { "an integer" } }
extension Float: RequestValue { static var expectation: String { "a number" } }
extension Bool: RequestValue { static var expectation: String { "a boolean" } }
extension String: RequestValue { static var expectation: String { "a string" } }
extension Array: RequestValue where Element: RequestValue { static var expectation: String { "an array" } }

extension KeyedDecodingContainer {
    /// The field's value, or nil when it is absent or null; a value of another JSON type is a
    /// 400 naming the field.
    func optional<T: RequestValue>(_ key: Key) throws -> T? {
        do {
            return try decodeIfPresent(T.self, forKey: key)
        } catch let error as APIError {
            throw error
        } catch {
            // Foundation reports a wrong type as a DecodingError but a number that does not fit
            // (1.5 for an integer) as an internal error: to the client both mean the same.
            throw APIError.wrongType(at: codingPath + [key], expected: T.expectation)
        }
    }

    func required<T: RequestValue>(_ key: Key) throws -> T {
        guard let value: T = try optional(key) else { throw APIError.missingParameter(at: codingPath + [key]) }
        return value
    }
}

extension Decoder {
    /// The fields of a value that must be a JSON object.
    func object<Key: CodingKey>(keyedBy: Key.Type) throws -> KeyedDecodingContainer<Key> {
        do {
            return try container(keyedBy: Key.self)
        } catch {
            throw APIError.wrongType(at: codingPath, expected: "an object")
        }
    }
}

enum RequestBody {
    /// Decodes a request body; every failure becomes a 400 that says what to fix.
    static func decode<Request: Decodable>(_ type: Request.Type, from body: Data) throws(APIError) -> Request {
        guard !body.isEmpty else { throw .invalidRequest("The request body is empty; send a JSON object.") }
        do {
            return try JSONDecoder().decode(Request.self, from: body)
        } catch let error as APIError {
            throw error
        } catch {
            throw syntaxError(in: body) ?? .invalidRequest("The request body could not be decoded: \(error)")
        }
    }

    /// JSONDecoder only says "not valid JSON"; JSONSerialization says where.
    private static func syntaxError(in body: Data) -> APIError? {
        do {
            _ = try JSONSerialization.jsonObject(with: body, options: .fragmentsAllowed)
            return nil
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
            return .invalidRequest("The request body is not valid JSON: \(detail)")
        }
    }
}

/// Throws a 400 unless `condition` holds.
func ensure(_ condition: Bool, _ message: @autoclosure () -> String, param: String?) throws(APIError) {
    guard condition else { throw .invalidRequest(message(), param: param) }
}
