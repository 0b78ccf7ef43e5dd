import Foundation
import OpenAIAPI
import XCTest

/// A request body from a JSON literal written as Swift values.
func body(_ object: [String: Any]) -> Data {
    try! JSONSerialization.data(withJSONObject: object)
}

/// JSON text with sorted keys: two documents are equal when their canonical forms are.
func canonical(_ object: Any) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]),
           as: UTF8.self)
}

func parse(_ data: Data) -> Any {
    try! JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed)
}

/// The encoded value, parsed back and compared key by key regardless of order; `NSNull()`
/// in `expected` requires the key to be present as null.
func assertJSON(_ value: some Encodable, equals expected: Any, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(canonical(parse(OpenAIJSON.encode(value))), canonical(expected), file: file, line: line)
}

/// The error a validation raised, or a failure when it succeeded.
func validationError(_ validate: () throws(APIError) -> ValidatedRequest, file: StaticString = #filePath,
                     line: UInt = #line) -> APIError? {
    do {
        let request = try validate()
        XCTFail("expected a validation error, got \(request)", file: file, line: line)
        return nil
    } catch {
        return error
    }
}
