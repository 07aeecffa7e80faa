import AtollAPI
import AtollCore
import AtollEngine
import AtollVolumes
import Foundation
import GRPCCore

/// The Volumes service: decodes, calls the engine's VolumeService (and ContainerService for
/// export and import, which must know about running containers) off the async pool, encodes.
struct VolumesService: Atoll_Engine_V1_Volumes.SimpleServiceProtocol {
    let engine: Engine

    func create(request: Atoll_Engine_V1_CreateVolumeRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_Volume
    {
        let volumes = engine.volumes
        let record = try await BlockingWork.run {
            try volumes.create(
                name: request.name.isEmpty ? nil : request.name, driver: request.driver, labels: request.labels,
                options: request.options
            ).record
        }
        return message(record, users: [], size: -1)
    }

    func list(request: Atoll_Engine_V1_ListVolumesRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_ListVolumesResponse
    {
        let volumes = engine.volumes
        let listed = try await BlockingWork.run { try VolumeFilter.apply(request.filters, to: try volumes.list()) }
        var response = Atoll_Engine_V1_ListVolumesResponse()
        response.volumes = listed.map { message($0.record, users: $0.users, size: -1) }
        return response
    }

    func inspect(request: Atoll_Engine_V1_InspectVolumeRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_Volume
    {
        let volumes = engine.volumes
        let (record, users, size) = try await BlockingWork.run {
            let record = try volumes.get(request.name)
            return (record, try volumes.users(of: request.name), volumes.size(request.name))
        }
        return message(record, users: users, size: size)
    }

    func remove(request: Atoll_Engine_V1_RemoveVolumeRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_RemoveVolumeResponse
    {
        let volumes = engine.volumes
        try await BlockingWork.run { try volumes.remove(request.name, force: request.force) }
        return Atoll_Engine_V1_RemoveVolumeResponse()
    }

    func prune(request: Atoll_Engine_V1_PruneVolumesRequest, context: ServerContext) async throws
        -> Atoll_Engine_V1_PruneVolumesResponse
    {
        let volumes = engine.volumes
        for filter in request.filters where !filter.hasPrefix("label=") && !filter.hasPrefix("label!=") {
            throw RPCError(
                code: .invalidArgument, message: "invalid filter \"\(filter)\": prune takes label and label!")
        }
        let (removed, reclaimed) = try await BlockingWork.run {
            try volumes.prune(all: request.all, labelFilters: request.filters)
        }
        var response = Atoll_Engine_V1_PruneVolumesResponse()
        response.removed = removed
        response.reclaimedBytes = reclaimed
        return response
    }

    func exportContent(
        request: Atoll_Engine_V1_ExportVolumeRequest, response: RPCWriter<Atoll_Engine_V1_DataChunk>,
        context: ServerContext
    ) async throws {
        let volumes = engine.volumes
        let containers = engine.containers
        // Fail before the first byte when the volume does not exist.
        _ = try await BlockingWork.run { try volumes.get(request.name) }
        try await StreamBridge.drain(produce: { fd in
            try containers.exportVolume(request.name, to: fd)
        }) { data in
            var chunk = Atoll_Engine_V1_DataChunk()
            chunk.data = data
            try await response.write(chunk)
        }
    }

    func importContent(
        request: RPCAsyncSequence<Atoll_Engine_V1_ImportVolumeRequest, any Error>, context: ServerContext
    )
        async throws -> Atoll_Engine_V1_Volume
    {
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next(), case .name(let name)? = first.part else {
            throw RPCError(code: .invalidArgument, message: "volume import: the first message must name the volume")
        }
        let containers = engine.containers
        let volumes = engine.volumes
        try await StreamBridge.feed(consume: { fd, upload in
            try containers.importVolume(name, from: fd, upload: upload)
        }) { write in
            while let message = try await iterator.next() {
                guard case .chunk(let data)? = message.part else {
                    throw RPCError(
                        code: .invalidArgument, message: "volume import: only the first message names the volume")
                }
                try await write(data)
            }
        }
        let (record, users) = try await BlockingWork.run { (try volumes.get(name), try volumes.users(of: name)) }
        return message(record, users: users, size: -1)
    }

    private func message(_ record: VolumeRecord, users: [String], size: Int64) -> Atoll_Engine_V1_Volume {
        var volume = Atoll_Engine_V1_Volume()
        volume.name = record.name
        volume.driver = record.driver
        volume.mountpoint = engine.volumes.dataPath(record.name)
        let formatter = ISO8601DateFormatter()
        volume.createdAt = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(record.created) / 1e9))
        volume.labels = record.labels
        volume.options = record.options
        volume.scope = "local"
        volume.anonymous = record.anonymous
        volume.containers = users
        volume.size = size
        return volume
    }
}
