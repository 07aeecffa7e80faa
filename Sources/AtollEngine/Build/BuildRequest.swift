import AtollCore

/// What `atoll build` asks for. The context is a directory the daemon already unpacked.
public struct BuildRequest: Sendable {
    public var dockerfile: String
    /// The Dockerfile's name as given, for error messages.
    public var dockerfileName: String
    /// NAME[:TAG] references for the result.
    public var tags: [String]
    public var buildArgs: [String: String]
    /// The stage to build (by name), or nil for the last.
    public var target: String?
    public var noCache: Bool
    /// Added to the image's labels.
    public var labels: [String: String]
    /// For RUN steps: "default", "none" or "host".
    public var network: String

    public init(
        dockerfile: String, dockerfileName: String = "Dockerfile", tags: [String] = [],
        buildArgs: [String: String] = [:],
        target: String? = nil, noCache: Bool = false, labels: [String: String] = [:], network: String = "default"
    ) {
        self.dockerfile = dockerfile
        self.dockerfileName = dockerfileName
        self.tags = tags
        self.buildArgs = buildArgs
        self.target = target
        self.noCache = noCache
        self.labels = labels
        self.network = network
    }
}

/// What a build reports while it runs.
public enum BuildEvent: Sendable, Equatable {
    /// Step `id` (unique in the build, from 1) begins: `stage` names the stage, `number` of `count`.
    case step(id: Int, stage: String, number: Int, count: Int, text: String, cached: Bool)
    /// Output of a RUN step.
    case output(id: Int, data: [UInt8])
    case done(id: Int, duration: Duration)
    case warning(String)
}

/// The image a build made.
public struct BuildResult: Sendable, Equatable {
    public var imageID: String
    public var tags: [String]
}
