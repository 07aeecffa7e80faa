import AtollCore
import AtollNetwork

extension ContainerService {
    /// `network connect`: the container joins the network now if it runs, and on every start.
    public func connect(_ reference: String, _ attachment: NetworkAttachment) throws {
        let id = try lookup(reference).id
        try locks.withLock(id) {
            guard var record = try fetch(id) else { throw AtollError.notFound("no such container: \(reference)") }
            guard !["none", "host"].contains(record.settings.network) else {
                throw AtollError.failedPrecondition(
                    "container \(record.name) uses --network \(record.settings.network): it cannot join other networks")
            }
            var networking = record.settings.networking ?? ContainerNetworking()
            let network = try networks.resolve(attachment.network)
            if networking.attachments.contains(where: { (try? networks.resolve($0.network).id) == network.id }) {
                throw AtollError.alreadyExists(
                    "container \(record.name) is already connected to network \(network.name)")
            }
            networking.attachments.append(attachment)
            networking = try networks.validate(mode: record.settings.network, networking: networking)
            if record.state.status.isActive {
                guard let added = networking.attachments.last else { return }
                try networks.connect(containerID: id, added)
            }
            record.settings.networking = networking
            try save(record)
        }
    }

    /// `network disconnect`: the container leaves the network now if it runs, and for good.
    public func disconnect(_ reference: String, network networkReference: String) throws {
        let id = try lookup(reference).id
        try locks.withLock(id) {
            guard var record = try fetch(id) else { throw AtollError.notFound("no such container: \(reference)") }
            let network = try networks.resolve(networkReference)
            var networking = record.settings.networking ?? ContainerNetworking()
            guard
                let index = networking.attachments.firstIndex(where: {
                    (try? networks.resolve($0.network).id) == network.id
                })
            else {
                throw AtollError.notFound("container \(record.name) is not connected to network \(network.name)")
            }
            if record.state.status.isActive { try networks.disconnect(containerID: id, network: network.id) }
            networking.attachments.remove(at: index)
            if index == 0 {
                // The container's primary network went: the next one takes its place, or none.
                record.settings.network = networking.attachments.first?.network ?? "none"
            }
            record.settings.networking = networking
            try save(record)
        }
    }
}
