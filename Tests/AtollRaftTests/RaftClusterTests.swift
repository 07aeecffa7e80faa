import Testing

/// Tests that run whole clusters in memory. Serialized: they depend on timers, and running
/// several clusters at once on a loaded 2-core machine causes spurious elections.
@Suite(.serialized) struct RaftClusterTests {}
