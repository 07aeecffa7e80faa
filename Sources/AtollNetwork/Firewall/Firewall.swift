import AtollCore
import CNftables
import Synchronization

/// Where the rendered ruleset goes. The real one is the kernel, through libnftables; tests use a
/// fake that records what it was given.
public protocol Firewall: Sendable {
    /// Applies a whole nftables script in one transaction: all of it or nothing.
    func apply(_ script: String) throws
    /// Removes a table (and with it every rule of that daemon).
    func removeTable(_ table: String) throws
}

/// libnftables in-process: no `nft` subprocess, and each script is one atomic netlink batch.
public final class NftablesFirewall: Firewall {
    private let context: Mutex<OpaquePointer>

    public init() throws {
        guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            throw AtollError(.unavailable, "cannot create an nftables context (libnftables)")
        }
        _ = nft_ctx_buffer_output(context)
        _ = nft_ctx_buffer_error(context)
        self.context = Mutex(context)
    }

    deinit { context.withLock { nft_ctx_free($0) } }

    public func apply(_ script: String) throws {
        try context.withLock { context in
            guard nft_run_cmd_from_buffer(context, script) == 0 else {
                let detail = String(cString: nft_ctx_get_error_buffer(context))
                    .split(separator: "\n").prefix(3).joined(separator: "; ")
                throw AtollError(.internalError, "nftables refused atoll's ruleset: \(detail)")
            }
        }
    }

    public func removeTable(_ table: String) throws {
        try apply("table inet \(table) {}\ndelete table inet \(table)\n")
    }

    /// The live table as nft prints it; "" when there is none.
    public func listTable(_ table: String) throws -> String {
        try context.withLock { context in
            guard nft_run_cmd_from_buffer(context, "list table inet \(table)") == 0 else {
                return ""
            }
            return String(cString: nft_ctx_get_output_buffer(context))
        }
    }
}

/// Stands in when libnftables cannot start: every change fails with the reason.
public struct UnavailableFirewall: Firewall {
    public let reason: String

    public init(reason: String) { self.reason = reason }

    public func apply(_ script: String) throws {
        throw AtollError(.unavailable, "nftables is unavailable on this host: \(reason)")
    }

    public func removeTable(_ table: String) throws { try apply("") }
}
