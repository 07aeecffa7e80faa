import GRPCCore

extension CallOptions {
    /// The defaults with a deadline `seconds` from the call's start.
    public static func within(seconds: Int) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = .seconds(seconds)
        return options
    }
}
