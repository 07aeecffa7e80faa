import Glibc

/// The controlling terminal of a CLI: raw mode for `-it` and the window size.
public enum Terminal {
    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// Puts `fd` in raw mode and returns what restores it (nil when it is not a terminal).
    public static func makeRaw(_ fd: Int32) -> (@Sendable () -> Void)? {
        var original = termios()
        guard tcgetattr(fd, &original) == 0 else { return nil }
        var raw = original
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSANOW, &raw) == 0 else { return nil }
        let saved = original
        return {
            var restore = saved
            tcsetattr(fd, TCSANOW, &restore)
        }
    }

    /// The window size of the terminal on `fd`, if it is one.
    public static func size(_ fd: Int32) -> (rows: UInt32, columns: UInt32)? {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 else { return nil }
        return (UInt32(size.ws_row), UInt32(size.ws_col))
    }
}
