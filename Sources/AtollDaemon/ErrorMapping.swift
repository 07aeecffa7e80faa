import AtollCore
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
}

extension SystemCallError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code { .internalError }
    public var rpcErrorMessage: String { description }
}
