import Foundation
import Logging

/// Logging setup shared by the executables: one line per event on standard error.
public enum AtollLogging {
    /// Parses a level name as users type it ("debug", "info", "warning", "error", ...).
    public static func level(named name: String) throws -> Logger.Level {
        let normalized = name.lowercased() == "warn" ? "warning" : name.lowercased()
        guard let level = Logger.Level(rawValue: normalized) else {
            throw AtollError.invalidArgument(
                "invalid log level \"\(name)\": want one of trace, debug, info, notice, warning, error, critical")
        }
        return level
    }

    /// Installs the standard-error handler at `level`. Call once, early in main.
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
