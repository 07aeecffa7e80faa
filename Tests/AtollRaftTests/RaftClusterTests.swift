import Testing

/// Tests that run whole clusters in memory, on real timers (see `testTiming` and
/// `withStallRetries`).
@Suite struct RaftClusterTests {}
