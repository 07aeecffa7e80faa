import AtollCore
import Foundation

/// The JSON value `{}`: the value type of Docker's `ExposedPorts` and `Volumes` sets. Decoding accepts
/// any object (its members are ignored) and `null`; encoding always writes `{}`.
public struct EmptyObject: Sendable, Codable, Equatable, Hashable {
    public init() {}

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), single.decodeNil() { return }
        _ = try decoder.container(keyedBy: AnyKey.self)
    }

    public func encode(to encoder: any Encoder) throws {
        _ = encoder.container(keyedBy: AnyKey.self)
    }
}

/// The one JSON encoding Atoll writes for documents it creates: sorted keys, no nulls (optional
/// fields left out), no escaped slashes, no blanks. The same value always gives the same bytes, so
/// the same digest.
enum CanonicalJSON {
    static func encode<T: Encodable>(_ value: T, what: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw AtollError.internalError("cannot encode \(what) as JSON", cause: error)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as AtollError {
            throw AtollError.invalidArgument("invalid \(what): \(error.message)")
        } catch {
            throw AtollError.invalidArgument("invalid \(what): \(describe(error))", cause: nil)
        }
    }

    /// A one-line account of a decoding error: what was wrong and where.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return p.isEmpty ? "top level" : p.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context)
            return "missing field \"\(key.stringValue)\"" + (at == "top level" ? "" : " in \(at)")
        case .typeMismatch(let type, let context):
            return "wrong type at \(path(context)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "null at \(path(context)): expected \(type)"
        case .dataCorrupted(let context):
            if let inner = context.underlyingError as? AtollError { return inner.message }
            let at = path(context)
            return at == "top level" ? "malformed JSON" : "bad value at \(at): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
