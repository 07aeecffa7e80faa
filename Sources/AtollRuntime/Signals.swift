import AtollCore
import Glibc

/// Signal names and numbers, as `docker kill -s` and STOPSIGNAL accept them: "KILL", "SIGKILL",
/// "sigkill" or "9".
public enum Signals {
    static let table: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP), ("ABRT", SIGABRT),
        ("IOT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL), ("USR1", SIGUSR1), ("SEGV", SIGSEGV),
        ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT),
        ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP), ("TSTP", SIGTSTP), ("TTIN", SIGTTIN),
        ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU), ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM),
        ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO), ("POLL", SIGPOLL), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// The number of a signal given by name or number.
    public static func number(_ text: String) throws -> Int32 {
        if let number = Int32(text) {
            guard number > 0, number < 65 else { throw AtollError.invalidArgument("invalid signal \"\(text)\"") }
            return number
        }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if name.hasPrefix("RTMIN+"), let offset = Int32(name.dropFirst(6)), offset >= 0, offset <= 30 {
            return 34 + offset
        }
        guard let entry = table.first(where: { $0.0 == name }) else {
            throw AtollError.invalidArgument("invalid signal \"\(text)\": want a name such as TERM or a number")
        }
        return entry.1
    }

    /// "SIGTERM" for 15.
    public static func name(_ number: Int32) -> String {
        table.first { $0.1 == number }.map { "SIG\($0.0)" } ?? String(number)
    }
}
