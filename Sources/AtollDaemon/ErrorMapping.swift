import AtollCore
import AtollEngine
import GRPCCore

/// AtollError maps to a gRPC status once, here at the service edge.
extension AtollError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        switch code {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .permissionDenied: .permissionDenied
        case .resourceExhausted: .resourceExhausted
        case .dataLoss: .dataLoss
        case .unavailable: .unavailable
        case .cancelled: .cancelled
        case .unsupported: .unimplemented
        default: .internalError
        }
    }

    public var rpcErrorMessage: String { description }
    /// Marks the engine's own errors, so that the CLI does not take an "unavailable" one (a
    /// registry that cannot be reached) for a lost connection to atolld.
    public var rpcErrorMetadata: Metadata { ["atoll-error": "\(code)"] }
}

extension SystemCallError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code { .internalError }
    public var rpcErrorMessage: String { description }
}

/// A failed start carries `docker run`'s exit status (125/126/127) to the CLI in metadata.
extension ContainerStartError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code { exitStatus == 125 ? .failedPrecondition : .invalidArgument }
    public var rpcErrorMessage: String { message }
    public var rpcErrorMetadata: Metadata { ["atoll-exit-status": "\(exitStatus)"] }
}

extension AtollError.Code {
    /// The code of an error a remote atolld (a manager) answered with, to pass on.
    init(_ code: RPCError.Code) {
        switch code {
        case .invalidArgument: self = .invalidArgument
        case .notFound: self = .notFound
        case .alreadyExists: self = .alreadyExists
        case .failedPrecondition: self = .failedPrecondition
        case .permissionDenied, .unauthenticated: self = .permissionDenied
        case .resourceExhausted: self = .resourceExhausted
        case .dataLoss: self = .dataLoss
        case .unavailable, .deadlineExceeded: self = .unavailable
        case .cancelled: self = .cancelled
        case .unimplemented: self = .unsupported
        default: self = .internalError
        }
    }
}
