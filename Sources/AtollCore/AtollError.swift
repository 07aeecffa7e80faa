/// The one error type Atoll's modules throw: a code a caller can switch on, a message a person can
/// read (lower case, naming the object), and an optional underlying cause.
public struct AtollError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is. A struct over a private enum, so new codes never break callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case invalidArgument, notFound, alreadyExists, failedPrecondition, permissionDenied
            case resourceExhausted, dataLoss, unavailable, cancelled, unsupported, internalError
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The caller asked for something malformed: a bad name, flag or archive.
        public static let invalidArgument = Code(.invalidArgument)
        /// The object named does not exist.
        public static let notFound = Code(.notFound)
        /// An object with that name already exists.
        public static let alreadyExists = Code(.alreadyExists)
        /// The object is not in a state that allows this (in use, locked, not committed).
        public static let failedPrecondition = Code(.failedPrecondition)
        /// The operating system refused the operation.
        public static let permissionDenied = Code(.permissionDenied)
        /// A limit was hit (size, count, disk).
        public static let resourceExhausted = Code(.resourceExhausted)
        /// Content did not match what it claimed to be (digest, size, format).
        public static let dataLoss = Code(.dataLoss)
        /// A service or peer cannot be reached.
        public static let unavailable = Code(.unavailable)
        /// The operation was cancelled.
        public static let cancelled = Code(.cancelled)
        /// This host or build does not support the operation.
        public static let unsupported = Code(.unsupported)
        /// A bug or an unexpected failure of the system.
        public static let internalError = Code(.internalError)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return message }
        if let inner = cause as? AtollError { return "\(message): \(inner.description)" }
        return "\(message): \(cause)"
    }
}

extension AtollError {
    public static func invalidArgument(_ message: String, cause: (any Error)? = nil) -> AtollError {
        AtollError(.invalidArgument, message, cause: cause)
    }
    public static func notFound(_ message: String) -> AtollError { AtollError(.notFound, message) }
    public static func alreadyExists(_ message: String) -> AtollError { AtollError(.alreadyExists, message) }
    public static func failedPrecondition(_ message: String) -> AtollError {
        AtollError(.failedPrecondition, message)
    }
    public static func dataLoss(_ message: String) -> AtollError { AtollError(.dataLoss, message) }
    public static func internalError(_ message: String, cause: (any Error)? = nil) -> AtollError {
        AtollError(.internalError, message, cause: cause)
    }
}
