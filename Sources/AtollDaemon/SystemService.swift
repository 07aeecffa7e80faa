import AtollAPI
import AtollCore
import AtollEngine
import GRPCCore

/// The System service: versions, host facts and disk usage.
struct SystemService: Atoll_Engine_V1_System.SimpleServiceProtocol {
    let engine: Engine
    let socketPath: String

    func version(request: Atoll_Engine_V1_VersionRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_VersionResponse
    {
        var response = Atoll_Engine_V1_VersionResponse()
        response.version = AtollVersion.version
        response.apiVersion = AtollVersion.apiVersion
        response.os = "linux"
        response.architecture = engine.host.architecture
        response.kernelVersion = engine.host.kernelVersion
        return response
    }

    func info(request: Atoll_Engine_V1_InfoRequest, context: ServerContext) async throws -> Atoll_Engine_V1_InfoResponse
    {
        let engine = self.engine
        let (runtimes, counts, storage) = try await BlockingWork.run {
            (engine.runtimeStatuses(), try engine.counts(), engine.storageStatus())
        }
        var response = Atoll_Engine_V1_InfoResponse()
        response.version = AtollVersion.version
        response.root = engine.configuration.root
        response.storageDriver = engine.snapshotter.driverName
        response.storageStatus = storage.map { key, value in
            var pair = Atoll_Engine_V1_KeyValue()
            pair.key = key
            pair.value = value
            return pair
        }
        response.runtimes = runtimes.map { status in
            var info = Atoll_Engine_V1_RuntimeInfo()
            info.name = status.name
            info.path = status.path
            info.version = status.version
            info.works = status.works
            info.problem = status.problem
            return info
        }
        response.defaultRuntime = engine.defaultRuntime() ?? ""
        response.cgroupVersion = engine.host.cgroupVersion
        response.kernelVersion = engine.host.kernelVersion
        response.operatingSystem = engine.host.operatingSystem
        response.architecture = engine.host.architecture
        response.cpus = Int32(engine.host.cpus)
        response.memoryBytes = engine.host.memoryBytes
        response.hostname = engine.host.hostname
        response.images = Int64(counts.images)
        response.containers = Int64(counts.containers)
        response.contentBlobs = Int64(counts.blobs)
        response.snapshots = Int64(counts.snapshots)
        response.socket = socketPath
        return response
    }

    func diskUsage(request: Atoll_Engine_V1_DiskUsageRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_DiskUsageResponse
    {
        let engine = self.engine
        let verbose = request.verbose
        let (rows, images, volumes) = try await BlockingWork.run {
            (
                try engine.diskUsage(), verbose ? try engine.images.list(all: true) : [],
                verbose ? try engine.volumeUsage() : []
            )
        }
        var response = Atoll_Engine_V1_DiskUsageResponse()
        response.rows = rows.map { row in
            var message = Atoll_Engine_V1_DiskUsageRow()
            message.type = row.type
            message.total = Int64(row.total)
            message.active = Int64(row.active)
            message.size = row.size
            message.reclaimable = row.reclaimable
            return message
        }
        response.images = images.map(ImagesService.message(for:))
        response.volumes = volumes.map { usage in
            var message = Atoll_Engine_V1_VolumeUsage()
            message.name = usage.name
            message.driver = usage.driver
            message.size = usage.size
            message.containers = usage.users
            return message
        }
        return response
    }
}
