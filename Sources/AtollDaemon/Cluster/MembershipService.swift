import AtollAPI
import GRPCCore

/// This host's membership (`atoll cluster init/join/leave/info`), on the engine's unix socket.
struct MembershipService: Atoll_Cluster_V1_Membership.SimpleServiceProtocol {
    let cluster: ClusterController

    func initialize(request: Atoll_Cluster_V1_InitRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_InitResponse
    {
        try await cluster.initialize(request)
    }

    func join(request: Atoll_Cluster_V1_JoinRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_JoinResponse
    {
        try await cluster.join(request)
    }

    func leave(request: Atoll_Cluster_V1_LeaveRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_LeaveResponse
    {
        try await cluster.leave(force: request.force)
        return Atoll_Cluster_V1_LeaveResponse()
    }

    func info(request: Atoll_Cluster_V1_InfoRequest, context: ServerContext) async throws
        -> Atoll_Cluster_V1_InfoResponse
    {
        await cluster.info()
    }
}
