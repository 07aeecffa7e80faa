import AtollCore
import CAtollShim
import Glibc

/// One connection to a monitor's attach socket (SOCK_SEQPACKET): each packet read carries one
/// byte naming the stream (2 stdout, 3 stderr) then the data; bytes written go to the
/// container's stdin, and shutting down the write side closes it.
public final class AttachConnection: Sendable {
    let socket: FileDescriptor

    /// Connects to the session `handle` (see `Conmon.handle`) in `socketDirectory`.
    public init(socketDirectory: String, handle: String) throws {
        let path = "\(socketDirectory)/\(handle)/attach"
        do {
            socket = try Syscall.connectSeqPacket(path)
        } catch {
            throw AtollError.internalError("cannot attach to the container's monitor at \(path)", cause: error)
        }
    }

    /// Blocks for the next piece of output; nil when the monitor closed the connection (the
    /// process ended and its output was delivered).
    public func read() throws -> (stream: LogStream, data: [UInt8])? {
        var buffer = [UInt8](repeating: 0, count: 32 * 1024 + 1)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try socket.read(into: $0) }
            if count == 0 { return nil }
            guard count > 1 else { continue }
            let stream: LogStream = buffer[0] == 3 ? .stderr : .stdout
            return (stream, Array(buffer[1..<count]))
        }
    }

    /// Sends bytes to the container's stdin.
    public func write(_ bytes: [UInt8]) throws {
        try socket.writeAll(bytes)
    }

    /// Tells the monitor stdin ended: it closes the container's stdin.
    public func closeStdin() {
        _ = Glibc.shutdown(socket.rawValue, Int32(SHUT_WR))
    }

    /// Stops reading: a blocked `read` returns nil.
    public func close() {
        _ = Glibc.shutdown(socket.rawValue, Int32(SHUT_RDWR))
    }

    /// Resizes a session's terminal through the monitor's window-size FIFO in the bundle.
    public static func resize(bundle: String, rows: UInt32, columns: UInt32) {
        guard let fifo = try? Syscall.open("\(bundle)/winsz", flags: O_WRONLY | O_NONBLOCK) else { return }
        try? fifo.writeAll(Array("\(rows) \(columns)\n".utf8))
    }
}
