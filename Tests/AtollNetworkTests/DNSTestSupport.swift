import AtollCore
import Foundation
import Glibc
import Logging
import Synchronization

@testable import AtollNetwork

/// A plain-socket DNS client for the server tests: blocking calls with a receive timeout, so a
/// server that never answers fails the test instead of hanging it. The async calls run the
/// blocking socket I/O on a thread of their own, never on a thread of Swift's cooperative pool.
enum DNSTestClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `body` on a new thread and returns its result, leaving the cooperative pool free.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// Sends one datagram to host:port and returns the first reply, or nil after `timeout` seconds.
    static func udp(_ message: [UInt8], host: String, port: Int, timeout: Int = 5) async throws -> [UInt8]? {
        try await onThread { try blockingUDP(message, host: host, port: port, timeout: timeout) }
    }

    /// Connects over TCP, writes `frames` (each with its two-byte length) in one send, and reads
    /// `count` length-framed replies.
    /// With `halfClose`, shuts down the sending side after writing, as some clients do.
    static func tcp(
        _ frames: [[UInt8]], host: String, port: Int, count: Int, halfClose: Bool = false, timeout: Int = 5
    ) async throws -> [[UInt8]] {
        try await onThread {
            try blockingTCP(frames, host: host, port: port, count: count, halfClose: halfClose, timeout: timeout)
        }
    }

    /// `udp` on the calling thread.
    static func blockingUDP(_ message: [UInt8], host: String, port: Int, timeout: Int = 5) throws -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        try setReceiveTimeout(fd, seconds: timeout)
        var address = try socketAddress(host: host, port: port)
        let sent = message.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == message.count else { throw Failure(description: "sendto: errno \(errno)") }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard received >= 0 else { return nil }
        return Array(buffer[0..<received])
    }

    /// `tcp` on the calling thread.
    static func blockingTCP(
        _ frames: [[UInt8]], host: String, port: Int, count: Int, halfClose: Bool = false, timeout: Int = 5
    ) throws -> [[UInt8]] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        try setReceiveTimeout(fd, seconds: timeout)
        var address = try socketAddress(host: host, port: port)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect: errno \(errno)") }
        let stream = frames.flatMap {
            [UInt8(truncatingIfNeeded: $0.count >> 8), UInt8(truncatingIfNeeded: $0.count)] + $0
        }
        let sent = stream.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == stream.count else { throw Failure(description: "send: errno \(errno)") }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var received: [UInt8] = []
        var replies: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while replies.count < count {
            if received.count >= 2 {
                let length = Int(received[0]) << 8 | Int(received[1])
                if received.count >= 2 + length {
                    replies.append(Array(received[2..<2 + length]))
                    received.removeFirst(2 + length)
                    continue
                }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure(description: "tcp read ended after \(replies.count) replies") }
            received += buffer[0..<n]
        }
        return replies
    }

    /// A UDP socket bound on host (port chosen by the kernel) that never answers: an upstream
    /// that is up but silent.
    static func silentSocket(host: String) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = try socketAddress(host: host, port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw Failure(description: "bind: errno \(errno)")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    private static func setReceiveTimeout(_ fd: Int32, seconds: Int) throws {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw Failure(description: "setsockopt: errno \(errno)")
        }
    }

    private static func socketAddress(host: String, port: Int) throws -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw Failure(description: "bad host \(host)") }
        return address
    }
}

extension DNSMessage {
    /// A query for `name`, encoded.
    static func queryBytes(id: UInt16 = 0x1234, _ name: String, _ type: DNSRecordType) throws -> [UInt8] {
        guard let name = DNSName(name) else { throw DNSTestClient.Failure(description: "bad name \(name)") }
        return DNSMessage.query(id: id, name: name, type: type).encoded()
    }

    /// The addresses in the answer section.
    var answerAddresses: [IPAddress] {
        answers.compactMap { if case .address(let address) = $0.data { address } else { nil } }
    }
}

/// A logger that prints nothing, unless ATOLL_TEST_DEBUG is set.
let dnsTestLogger: Logger = {
    var logger = Logger(label: "atoll.dns.test")
    logger.logLevel = ProcessInfo.processInfo.environment["ATOLL_TEST_DEBUG"] == nil ? .critical : .debug
    return logger
}()

/// Holds every thread of Swift's cooperative pool: `count` detached tasks that each block their
/// thread (in `usleep`) until `release()` or until `limit` has passed.
final class CooperativePoolBlocker: Sendable {
    private struct Counts {
        var started = 0
        var expired = 0
        var released = false
    }

    private final class Shared: Sendable {
        let counts = Mutex(Counts())
    }

    private let shared: Shared
    private let tasks: [Task<Void, Never>]

    init(count: Int, limit: Duration) {
        let shared = Shared()
        self.shared = shared
        tasks = (0..<count).map { _ in
            Task.detached {
                shared.counts.withLock { $0.started += 1 }
                let deadline = ContinuousClock.now + limit
                while !shared.counts.withLock({ $0.released }) {
                    guard ContinuousClock.now < deadline else {
                        shared.counts.withLock { $0.expired += 1 }
                        return
                    }
                    usleep(10_000)
                }
            }
        }
    }

    /// Blocks the calling thread (not one of the pool's) until `threads` tasks hold their
    /// thread, or `timeout` has passed; returns how many do.
    func waitUntilBlocking(threads: Int, timeout: Duration) -> Int {
        let deadline = ContinuousClock.now + timeout
        while true {
            let started = shared.counts.withLock { $0.started }
            if started >= threads || ContinuousClock.now >= deadline { return started }
            usleep(1_000)
        }
    }

    /// How many tasks gave up waiting for `release()`.
    var expired: Int { shared.counts.withLock { $0.expired } }

    /// Lets every task finish.
    func release() { shared.counts.withLock { $0.released = true } }

    /// Releases the tasks and waits until all have finished.
    func finish() async {
        release()
        for task in tasks { await task.value }
    }
}
