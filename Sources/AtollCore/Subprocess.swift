import Foundation
import Glibc

/// Runs an external program to completion and captures what it printed.
public enum Subprocess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// The program outlived the timeout and was killed.
        public var timedOut = false
        public var succeeded: Bool { status == 0 }

        public init(status: Int32, stdout: String, stderr: String, timedOut: Bool = false) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
            self.timedOut = timedOut
        }
    }

    /// Runs `executable` with `arguments`; never throws for a non-zero exit (check `status`),
    /// only when the program cannot be started or its output cannot be read.
    /// `environment` is added to this process's own; `input` is written to the program's
    /// standard input (on a thread of its own, so a program that prints before it reads cannot
    /// deadlock), `inputFile` opened as it; without either, standard input is /dev/null.
    /// With a `timeout`, a program still running then is killed (SIGKILL), `onTimeout` runs (to
    /// kill what it started, which may hold the output pipes) and `timedOut` is set.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], input: Data? = nil,
        inputFile: String? = nil, timeout: Duration? = nil, onTimeout: (@Sendable () -> Void)? = nil
    ) throws -> Result {
        guard input == nil || inputFile == nil else {
            throw AtollError.invalidArgument("give \(executable) its input as data or as a file, not both")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let inputPipe = input.map { _ in Pipe() }
        if let inputFile {
            guard let handle = FileHandle(forReadingAtPath: inputFile) else {
                throw AtollError(.notFound, "cannot open \(inputFile) as the standard input of \(executable)")
            }
            process.standardInput = handle
        } else {
            process.standardInput = inputPipe ?? FileHandle.nullDevice
        }
        do { try process.run() } catch {
            throw AtollError(.unavailable, "cannot run \(executable)", cause: error)
        }
        let group = DispatchGroup()
        if let input, let writer = inputPipe?.fileHandleForWriting {
            // A program that exits without reading it all closes the pipe: not an error here. The
            // writer runs on a thread of its own that blocks SIGPIPE (a process that does not
            // ignore it would die of it); the signal, directed at that thread, dies with it.
            group.enter()
            Thread {
                var pipeSignal = sigset_t()
                sigemptyset(&pipeSignal)
                sigaddset(&pipeSignal, SIGPIPE)
                pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
                try? writer.write(contentsOf: input)
                try? writer.close()
                group.leave()
            }.start()
        }
        let killer = timeout.map { limit in
            let item = DispatchWorkItem {
                kill(process.processIdentifier, SIGKILL)
                onTimeout?()
            }
            let nanoseconds = limit.components.seconds * 1_000_000_000 + limit.components.attoseconds / 1_000_000_000
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds)), execute: item)
            return item
        }
        // Drain both pipes concurrently so a chatty program cannot block on a full pipe.
        nonisolated(unsafe) var errData = Swift.Result<Data, SystemCallError>.success(Data())
        DispatchQueue.global().async(group: group) { errData = drain(err.fileHandleForReading) }
        let outData = drain(out.fileHandleForReading)
        // Nobody reads the pipe after a failure: closing it ends a program still printing to it.
        if case .failure = outData { try? out.fileHandleForReading.close() }
        group.wait()
        process.waitUntilExit()
        killer?.cancel()
        let killed = process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
        return Result(
            status: process.terminationStatus,
            stdout: String(decoding: try outData.get(), as: UTF8.self),
            stderr: String(decoding: try errData.get(), as: UTF8.self),
            timedOut: killed && timeout != nil
        )
    }

    /// Reads a pipe to its end. Foundation's `readDataToEndOfFile` traps on any read error (the
    /// whole process dies); this retries EINTR and returns any other error.
    static func drain(_ handle: FileHandle) -> Swift.Result<Data, SystemCallError> {
        var data = Data()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            let count: Int
            do {
                count = try Syscall.retrying("read", "a child's output") {
                    Glibc.read(handle.fileDescriptor, buffer.baseAddress, buffer.count)
                }
            } catch {
                return .failure(error)
            }
            if count == 0 { return .success(data) }
            data.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// The absolute path of `name` on PATH (or the usual sbin directories), if any.
    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for directory in directories where access("\(directory)/\(name)", X_OK) == 0 {
            return "\(directory)/\(name)"
        }
        return nil
    }
}
