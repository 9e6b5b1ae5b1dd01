import Foundation

/// A JSON object as text with sorted keys: the bodies of control and Engine API calls, and the JSON
/// columns of runs, backends and events.
enum JSONText {
    /// `object` as JSON, or `nil` when it holds something JSON cannot say.
    static func encode(_ object: [String: Any]) -> String? {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
    }
}
